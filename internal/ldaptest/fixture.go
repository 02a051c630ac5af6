package ldaptest

// The seeded tree. Every name below exists in a directory that Start
// returns, unless a test removed it with Modify.
const (
	// BaseDN is the suffix of the seeded directory.
	BaseDN = "dc=example,dc=org"
	// PeopleDN holds the users (inetOrgPerson entries named by uid).
	PeopleDN = "ou=people," + BaseDN
	// GroupsDN holds the groups (groupOfNames with member).
	GroupsDN = "ou=groups," + BaseDN

	// RootDN and RootPassword are the directory's rootdn: it may write
	// everything. Tests use it to change the tree (Modify); warden never
	// should.
	RootDN       = "cn=admin," + BaseDN
	RootPassword = "root-Secret-1"

	// ReaderDN and ReaderPassword are a read-only service account, the
	// one a search-then-bind configuration uses to find users.
	ReaderDN       = "cn=reader," + BaseDN
	ReaderPassword = "reader-Secret-1"

	// RoleAttribute is the user attribute that lists role names
	// (ATTRIBUTE mode).
	RoleAttribute = "employeeType"

	// UserFilter finds an enabled user by uid: it excludes accounts
	// locked by the ppolicy overlay (pwdAccountLockedTime), so a search
	// with it does not find the disabled user, and a Lookup with it
	// reports that user gone.
	UserFilter = "(&(objectClass=inetOrgPerson)(uid={username})(!(pwdAccountLockedTime=*)))"
	// UserDNTemplate names a user's entry from its uid (direct bind).
	UserDNTemplate = "uid={username}," + PeopleDN
	// GroupFilter finds the groups that list a DN as member.
	GroupFilter = "(&(objectClass=groupOfNames)(member={dn}))"
)

// The seeded groups. Staff's only member is the group Operators, so
// Operators' members belong to Staff through nesting; the memberof overlay
// gives them memberOf: Operators but not memberOf: Staff (it does not
// cascade), which only a group search resolves.
const (
	Operators = "cn=operators," + GroupsDN
	Admins    = "cn=admins," + GroupsDN
	Staff     = "cn=staff," + GroupsDN
)

// User is a seeded user.
type User struct {
	// Username is the uid.
	Username string
	// Password is the clear-text password; the directory stores it
	// hashed ({SSHA}, hashed by slapd on add).
	Password string
	// DN is the entry's distinguished name.
	DN string
	// Mail is the mail attribute.
	Mail string
	// Groups are the groups the user is a direct member of.
	Groups []string
	// AllGroups are Groups plus the groups reached through nesting.
	AllGroups []string
	// Roles are the values of RoleAttribute.
	Roles []string
	// Disabled says the account is locked: its bind fails with
	// invalidCredentials and UserFilter excludes it.
	Disabled bool
}

// The seeded users.
var (
	// Alice is in Operators, so in Staff through nesting; roles operator
	// and viewer.
	Alice = User{
		Username: "alice", Password: "alice-Secret-1",
		DN: "uid=alice," + PeopleDN, Mail: "alice@example.org",
		Groups: []string{Operators}, AllGroups: []string{Operators, Staff},
		Roles: []string{"operator", "viewer"},
	}
	// Bob is in Admins only; role admin.
	Bob = User{
		Username: "bob", Password: "bob-Secret-1",
		DN: "uid=bob," + PeopleDN, Mail: "bob@example.org",
		Groups: []string{Admins}, AllGroups: []string{Admins},
		Roles: []string{"admin"},
	}
	// Carol is in no group and has no role.
	Carol = User{
		Username: "carol", Password: "carol-Secret-1",
		DN: "uid=carol," + PeopleDN, Mail: "carol@example.org",
	}
	// Dave is disabled (pwdAccountLockedTime 000001010000Z: locked
	// until an administrator unlocks him) and otherwise like Alice.
	Dave = User{
		Username: "dave", Password: "dave-Secret-1",
		DN: "uid=dave," + PeopleDN, Mail: "dave@example.org",
		Groups: []string{Operators}, AllGroups: []string{Operators, Staff},
		Roles: []string{"operator"}, Disabled: true,
	}
)

// Users lists every seeded user.
var Users = []User{Alice, Bob, Carol, Dave}
