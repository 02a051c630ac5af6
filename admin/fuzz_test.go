package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/account"
)

// FuzzDecodeJSON feeds arbitrary bodies to the decoder every endpoint uses,
// into each request type. It must never panic; a refusal is a 400 (or 413)
// whose message does not echo the body (which may hold a password); an
// accepted body decodes to a value that survives a round trip.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"username":"admin","password":"s3cret-pass-1"}`,
		`{"username":"dev","password":"x","expireTimeInHours":1e308,"label":"ci"}`,
		`{"username":"d","password":"p","unknown":1}`,
		`{"username":"device-1","password":"p","roles":["r1"],"initialPermissions":[{"resource":"a/#","operation":"write","context":"mqtt"}],"grantTypes":[{"method":"password","isRequired":true}],"certificates":[{"fingerprint":"AB:CD","createdAt":"2026-01-01T00:00:00Z"}]}`,
		`[{"username":"a1"},{"username":"a2"}]`,
		`{"name":"r","isShared":true,"permissions":[{"id":"x","resource":"/api/#","operation":"readWrite","context":"http"}]}`,
		`{"resource":"t","operation":7}`,
		`{} {}`,
		`{"password":"\ud800"}`,
		`{"username":"a"`,
		``,
		`null`,
	} {
		f.Add([]byte(s))
	}
	targets := []func() any{
		func() any { return new(loginRequest) },
		func() any { return new(account.NewUser) },
		func() any { return new([]account.NewUser) },
		func() any { return new(account.UserUpdate) },
		func() any { return new(roleRequest) },
		func() any { return new(account.PermissionUpdate) },
		func() any { return new(account.PasswordChange) },
		func() any { return new([]string) },
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, mk := range targets {
			v := mk()
			err := decodeJSON(bytes.NewReader(body), v)
			if err != nil {
				code, msg := status(err)
				if code != http.StatusBadRequest {
					t.Fatalf("refusal with status %d (%v), want 400", code, err)
				}
				if len(body) >= 8 && strings.Contains(msg, string(body)) {
					t.Fatalf("error %q echoes the body", msg)
				}
				continue
			}
			again, merr := json.Marshal(v)
			if merr != nil {
				t.Fatalf("accepted value does not encode: %v", merr)
			}
			w := mk()
			if err := decodeJSON(bytes.NewReader(again), w); err != nil {
				t.Fatalf("re-decoding %s: %v", again, err)
			}
			if again2, _ := json.Marshal(w); !bytes.Equal(again, again2) {
				t.Fatalf("round trip changed the value: %s != %s", again, again2)
			}
		}
	})
}

// TestDecodeTooLarge: a body over MaxBodyBytes is a 413, wherever the
// limit falls inside the JSON.
func TestDecodeTooLarge(t *testing.T) {
	t.Parallel()
	big := `{"username":"` + strings.Repeat("a", MaxBodyBytes) + `"}`
	r, _ := http.NewRequest("POST", "/", strings.NewReader(big))
	var v loginRequest
	code, _ := status(decode(nilWriter{}, r, &v))
	if code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", code)
	}
}

type nilWriter struct{}

func (nilWriter) Header() http.Header         { return http.Header{} }
func (nilWriter) Write(b []byte) (int, error) { return len(b), nil }
func (nilWriter) WriteHeader(int)             {}

// TestPaginateHugePage: a page number far past the end is an empty page,
// not an overflow.
func TestPaginateHugePage(t *testing.T) {
	t.Parallel()
	for _, page := range []int{4611686018427387906, 1 << 62, int(^uint(0) >> 1)} {
		from, to, p := paginate(5, page, 2)
		if from != 5 || to != 5 || p.TotalRowsInPage != 0 || p.NextPage != nil {
			t.Fatalf("page %d: from %d to %d %+v", page, from, to, p)
		}
	}
	if from, to, _ := paginate(5, 3, 2); from != 4 || to != 5 {
		t.Fatalf("last page: %d..%d", from, to)
	}
}
