package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/store"
	"github.com/warden-mqtt/warden/store/storetest"
)

// BenchmarkUpdateDeviceAmongUsers is PUT /api/users/{id} of one device
// on a fleet where 5,000 devices are users, on Redis: the last-admin
// rule used to read every user twice per change; it reads the changed
// user only, since a device is no admin.
func BenchmarkUpdateDeviceAmongUsers(b *testing.B) {
	a := newAPI(b, storetest.OpenRedis(b))
	ctx := context.Background()
	var id string
	for i := range 5000 {
		u, err := a.st.CreateUser(ctx, store.User{Username: fmt.Sprintf("device-%05d", i)})
		if err != nil {
			b.Fatal(err)
		}
		id = u.ID
	}
	h := a.srv.Handler()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("PUT", "/api/users/"+id, strings.NewReader(fmt.Sprintf(`{"mqttPublishPrefix":"plant%d/"}`, i%2)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+a.admin)
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}
