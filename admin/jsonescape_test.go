package admin_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/warden-mqtt/warden/admin"
	"github.com/warden-mqtt/warden/store/storetest"
)

// TestJSONAnswersAreNotHTMLEscaped (issue 15, item 13): the otpauth URI of
// POST /api/mfa/enable comes back with literal "&" between its query
// parameters, as a QR tool or a copy-paste expects, not "\u0026".
func TestJSONAnswersAreNotHTMLEscaped(t *testing.T) {
	t.Parallel()
	a := newAPI(t, storetest.OpenBolt(t), func(o *admin.Options) { o.MFAEnabled = true })
	code, body := a.do("POST", "/api/mfa/enable", a.admin, nil)
	if code != http.StatusOK {
		t.Fatalf("POST /api/mfa/enable: %d %s", code, body)
	}
	if !bytes.Contains(body, []byte(`"uri":"otpauth://totp/`)) || !bytes.Contains(body, []byte("&")) || bytes.Contains(body, []byte(`\u0026`)) {
		t.Fatalf("POST /api/mfa/enable answered %s; want the otpauth URI with literal & separators", body)
	}
	var resp struct {
		URI string `json:"uri"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	mSecretOf(t, resp.URI, "admin")
}
