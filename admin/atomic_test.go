package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// TestLastAdminConcurrentDeletes (issue 14, item 18): the last two admins
// are deleted at the same moment by a user who may delete users. Exactly
// one DELETE succeeds and one admin remains, on bbolt and on Redis; the
// same for two concurrent removals of the admin role. Several rounds,
// each on a fresh server, give the race many chances.
func TestLastAdminConcurrentDeletes(t *testing.T) {
	t.Parallel()
	const rounds = 8
	for _, backend := range []struct {
		name string
		open func(testing.TB, ...storetest.Option) store.Store
	}{{"bolt", storetest.OpenBolt}, {"redis", storetest.OpenRedis}} {
		t.Run(backend.name, func(t *testing.T) {
			for round := range rounds {
				a := newAPI(t, backend.open(t))
				adminRole := uRoleID(t, a, admin.RoleAdmin)
				other, _ := rCreateUser(t, a, "admin2", []string{adminRole})
				_, _, ops := eUser(t, a, "ops", nil, httpPerm("/api/users/#", "readWrite"))
				adminID := uAdminID(t, a)
				// Even rounds delete, odd rounds take the role away.
				type request struct{ method, path string }
				reqs := [2]request{{"DELETE", "/api/users/" + other}, {"DELETE", "/api/users/" + adminID}}
				var body [2]any
				if round%2 == 1 {
					reqs = [2]request{{"DELETE", "/api/users/" + other + "/roles"}, {"DELETE", "/api/users/" + adminID + "/roles"}}
					body = [2]any{map[string]any{"roleId": adminRole}, map[string]any{"roleId": adminRole}}
				}
				var codes [2]int
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range 2 {
					wg.Go(func() {
						<-start
						codes[i], _ = a.do(reqs[i].method, reqs[i].path, ops, body[i])
					})
				}
				close(start)
				wg.Wait()
				slices.Sort(codes[:])
				if codes != [2]int{http.StatusOK, http.StatusConflict} {
					t.Fatalf("round %d: concurrent removals of the last two admins answered %v, want one 200 and one 409", round, codes)
				}
				holders := 0
				users, err := a.st.Users(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				for _, u := range users {
					if slices.Contains(u.Roles, adminRole) {
						holders++
					}
				}
				if holders != 1 {
					t.Fatalf("round %d: %d users hold %s, want 1", round, holders, admin.RoleAdmin)
				}
			}
		})
	}
}

// TestUserBatchIsOneTransaction: a batch that fails on its last user
// (a name that folds like the first's) leaves nothing behind, not even
// the own roles of the users before it.
func TestUserBatchIsOneTransaction(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		rolesBefore := len(mustRoles(t, a))
		batch := []map[string]any{}
		for i := range 5 {
			batch = append(batch, map[string]any{"username": fmt.Sprintf("dev-%d", i), "password": rPassword})
		}
		// Taken by a user created in between: the batch's own check
		// passes, the store's refuses it inside the transaction.
		batch = append(batch, map[string]any{"username": "late", "password": rPassword})
		if _, err := a.st.CreateUser(context.Background(), store.User{Username: "LATE"}); err != nil {
			t.Fatal(err)
		}
		code, b := a.do("POST", "/api/users/batch", a.admin, batch)
		if code != http.StatusConflict {
			t.Fatalf("batch with a taken name: %d %s, want 409", code, b)
		}
		names := uUsernames(t, a)
		for i := range 5 {
			if names[fmt.Sprintf("dev-%d", i)] != "" {
				t.Errorf("dev-%d was created by a refused batch", i)
			}
		}
		if n := len(mustRoles(t, a)); n != rolesBefore {
			t.Errorf("%d roles after the refused batch, want %d", n, rolesBefore)
		}
	})
}

// TestRenameRenamesOwnRoleOverHTTP: a rename and its own role's rename
// are one change: a rename whose role name is taken changes neither.
func TestRenameRenamesOwnRoleOverHTTP(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, a *api) {
		id, own := rCreateUser(t, a, "carol", nil)
		a.must("PUT", "/api/users/"+id, map[string]any{"username": "carol2"}, http.StatusOK, nil)
		if ro := rGetRole(t, a, own); ro.Name != "carol2" {
			t.Errorf("own role after the rename is named %q, want carol2", ro.Name)
		}
		rCreateRole(t, a, "shared-name", true)
		code, b := a.do("PUT", "/api/users/"+id, a.admin, map[string]any{"username": "shared-name", "mqttPublishPrefix": "x/"})
		if code != http.StatusConflict {
			t.Fatalf("rename onto a role's name: %d %s, want 409", code, b)
		}
		if u := uGet(t, a, id); u.Username != "carol2" {
			t.Errorf("refused rename changed the username to %q", u.Username)
		}
		if ro := rGetRole(t, a, own); ro.Name != "carol2" {
			t.Errorf("refused rename changed the own role's name to %q", ro.Name)
		}
		// Refused by the store inside the transaction (a name folding like
		// another user's): a role renamed before the user would have
		// stayed renamed.
		rCreateUser(t, a, "dave", nil)
		if code, b := a.do("PUT", "/api/users/"+id, a.admin, map[string]any{"username": "DAVE"}); code != http.StatusConflict {
			t.Fatalf("rename onto DAVE beside dave: %d %s, want 409", code, b)
		}
		if ro := rGetRole(t, a, own); ro.Name != "carol2" {
			t.Errorf("refused rename changed the own role's name to %q", ro.Name)
		}
	})
}

func mustRoles(t *testing.T, a *api) []rRole {
	t.Helper()
	var roles []rRole
	a.must("GET", "/api/roles", nil, http.StatusOK, &roles)
	return roles
}
