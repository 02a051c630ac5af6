package admin_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/credential"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// TestUsernameRules (issue 14, item 15): names that look like another
// user's, or hide characters, are refused over HTTP; a name typed in
// another Unicode normalisation form is the same name.
func TestUsernameRules(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		create := func(name string) (int, []byte) {
			return a.do("POST", "/api/users", a.admin, map[string]any{"username": name, "password": rPassword})
		}
		for _, tc := range []struct {
			name, username string
			want           int
			says           string
		}{
			{"the admin in another case", "Admin", http.StatusConflict, "taken"},
			{"the admin in capitals", "ADMIN", http.StatusConflict, "taken"},
			{"the admin in fullwidth letters", "ＡＤＭＩＮ", http.StatusBadRequest, "compatibility"},
			{"the admin with a zero-width space", "ad\u200bmin", http.StatusBadRequest, "format"},
			{"the admin behind a bidi override", "\u202enimda", http.StatusBadRequest, "format"},
			{"a broker topic name", "$SYS", http.StatusBadRequest, "'$'"},
			{"Latin with a Cyrillic a", "p\u0430ypal", http.StatusBadRequest, "mix scripts"},
			{"a no-break space", "line\u00a0operator", http.StatusBadRequest, "white space"},
		} {
			code, b := create(tc.username)
			if code != tc.want || errorCode(t, b) != tc.want || !strings.Contains(string(b), tc.says) {
				t.Errorf("%s: create %q = %d %s; want %d saying %q", tc.name, tc.username, code, b, tc.want, tc.says)
			}
		}
		// Decomposed input is stored composed and found either way.
		var u uUser
		a.must("POST", "/api/users", map[string]any{"username": "Jose\u0301", "password": rPassword}, http.StatusCreated, &u)
		if u.Username != "Jos\u00e9" {
			t.Errorf("stored username %q, want the NFC form", u.Username)
		}
		a.login("Jos\u00e9", rPassword)
		a.login("Jose\u0301", rPassword)
		if code, b := create("Jos\u00e9"); code != http.StatusConflict {
			t.Errorf("create of the NFC spelling: %d %s, want 409", code, b)
		}
		// Renames and batches follow the same rules.
		bob, _ := rCreateUser(t, a, "bob", nil)
		if code, b := a.do("PUT", "/api/users/"+bob, a.admin, map[string]any{"username": "aDmIn"}); code != http.StatusConflict {
			t.Errorf("rename bob to aDmIn: %d %s, want 409", code, b)
		}
		if code, b := a.do("PUT", "/api/users/"+bob, a.admin, map[string]any{"username": "b\u200bob"}); code != http.StatusBadRequest {
			t.Errorf("rename bob to b<ZWSP>ob: %d %s, want 400", code, b)
		}
		a.must("PUT", "/api/users/"+bob, map[string]any{"username": "Bob"}, http.StatusOK, nil) // its own name in another case
		if code, b := a.do("POST", "/api/users/batch", a.admin, []map[string]any{
			{"username": "eve", "password": rPassword}, {"username": "EVE", "password": rPassword},
		}); code != http.StatusConflict {
			t.Errorf("batch of eve and EVE: %d %s, want 409", code, b)
		}
		// Role names refuse hidden characters too.
		if code, b := a.do("POST", "/api/roles", a.admin, map[string]any{"name": "ops\u202e", "isShared": true}); code != http.StatusBadRequest {
			t.Errorf("role name with a bidi override: %d %s, want 400", code, b)
		}
		// The registry applies the username rules (422, its contract).
		a.must("POST", "/api/client-registry/open", map[string]any{"duration": 60000}, http.StatusNoContent, nil)
		if code, b := gRegister(a, map[string]any{"username": "ad\u200bmin", "password": "device-password-1", "context": "x"}); code != http.StatusUnprocessableEntity {
			t.Errorf("register ad<ZWSP>min: %d %s, want 422", code, b)
		}
	})
}

// TestOldUsernamesKeepWorking: a user stored before the rules (here a
// name mixing scripts and one starting with '$') still logs in and can be
// changed; only a new name must meet the rules.
func TestOldUsernamesKeepWorking(t *testing.T) {
	t.Parallel()
	a := newAPI(t, storetest.OpenBolt(t))
	h, err := credential.Hash(rPassword, fastParams)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"p\u0430ypal", "$legacy"} {
		u, err := a.st.CreateUser(context.Background(), store.User{Username: name, PasswordHash: h,
			GrantTypes: []store.GrantType{{Method: store.GrantPassword}}})
		if err != nil {
			t.Fatal(err)
		}
		a.login(name, rPassword)
		a.must("PUT", "/api/users/"+u.ID, map[string]any{"username": name, "mqttPublishPrefix": "old/"}, http.StatusOK, nil)
	}
}
