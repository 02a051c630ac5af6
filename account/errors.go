package account

import (
	"errors"
	"fmt"
)

// The kinds of refusal. Each error the rules return is an *Error of one
// of these kinds (errors.Is matches the kind); a surface maps the kind to
// its own answer (admin: 400, 403, 404, 409) and shows the message.
var (
	ErrInvalid   = errors.New("account: invalid request") // malformed, or a format rule broken (a name, a prefix, a permission)
	ErrForbidden = errors.New("account: forbidden")       // the actor may not; the message names what it lacks
	ErrNotFound  = errors.New("account: not found")       // the user, role, permission or certificate named does not exist
	ErrConflict  = errors.New("account: conflict")        // the change contradicts the model (a name taken, the last admin, an own or built-in role)
)

// Error is a refusal by one of the rules. Its text is written for the
// actor: it names fields, users, roles and permissions, never a secret.
type Error struct {
	// Kind is ErrInvalid, ErrForbidden, ErrNotFound or ErrConflict.
	Kind error
	// Msg is the text the actor sees.
	Msg string
}

// Error returns the message for the actor.
func (e *Error) Error() string { return e.Msg }

// Unwrap returns the kind, so that errors.Is(err, ErrConflict) holds.
func (e *Error) Unwrap() error { return e.Kind }

// errorf builds an *Error of kind.
func errorf(kind error, format string, args ...any) error {
	return refusal(kind, format, args...)
}

// refusal is errorf typed as *Error, for code that reads its kind.
func refusal(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Refusals a surface may want to tell apart (each is also of its kind).
var (
	// ErrLastAdmin refuses a change that leaves no active holder of
	// RoleAdmin.
	ErrLastAdmin error = &Error{Kind: ErrConflict, Msg: fmt.Sprintf("the last user holding %s cannot lose it", RoleAdmin)}
	// ErrBuiltinRole refuses a change of RoleAdmin itself: it is what
	// lets anyone repair the model, so it is fixed.
	ErrBuiltinRole error = &Error{Kind: ErrConflict, Msg: fmt.Sprintf("the built-in role %s cannot be changed or deleted", RoleAdmin)}
	// ErrWrongPassword refuses a password change whose current password
	// is wrong; the failure counts towards the login lockout.
	ErrWrongPassword error = &Error{Kind: ErrForbidden, Msg: "wrong password"}
	// ErrLocked refuses a password change while the login lockout blocks
	// the user from the actor's address. Its text is ErrWrongPassword's,
	// so the answer does not tell a locked account from a wrong guess.
	ErrLocked error = &Error{Kind: ErrForbidden, Msg: "wrong password"}
)

// BatchError is the refusal of one user of a batch (CreateUsers): Err
// refused the user at Index, and with it the whole batch.
type BatchError struct {
	Index int
	Err   error
}

// Error names the user's place in the batch and its refusal.
func (e *BatchError) Error() string { return fmt.Sprintf("user %d: %v", e.Index, e.Err) }

// Unwrap returns the refusal of the user.
func (e *BatchError) Unwrap() error { return e.Err }
