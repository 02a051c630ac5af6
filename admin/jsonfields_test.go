package admin

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/warden-mqtt/warden/account"
	"github.com/warden-mqtt/warden/acl"
	"github.com/warden-mqtt/warden/registry"
)

// TestJSONFieldsAgreeWithTheDecoder: the fields the unknown-field error
// lists for each request type are exactly the keys encoding/json accepts
// there: each decodes (as null) under DisallowUnknownFields, and the
// list holds every exported field, embedded structs flattened.
func TestJSONFieldsAgreeWithTheDecoder(t *testing.T) {
	t.Parallel()
	type inner struct {
		Deep string `json:"deep"`
	}
	type withEmbedded struct {
		Top string `json:"top"`
		inner
		Skipped string `json:"-"`
		Plain   int
	}
	for _, tc := range []struct {
		v    any
		want string
	}{
		{new(account.PasswordChange), "password, newPassword, revokeApplicationTokens"},
		{new(withEmbedded), "top, deep, Plain"},
		{new(account.NewUser), ""}, {new(account.UserUpdate), ""}, {new(confirmRequest), ""},
		{new(roleRequest), ""}, {new(account.PermissionUpdate), ""}, {new(acl.Permission), ""},
		{new(loginRequest), ""}, {new(logoutRequest), ""}, {new(mfaLoginRequest), ""},
		{new(createMFAKeyRequest), ""}, {new(registry.Request), ""}, {new(applicationTokenRequest), ""},
	} {
		typ := reflect.TypeOf(tc.v).Elem()
		fs := fieldsOf(typ)
		if tc.want != "" && fs.names != tc.want {
			t.Errorf("%s: fields %q, want %q", typ, fs.names, tc.want)
		}
		if fieldsOf(typ) != fs {
			t.Errorf("%s: fields built twice, want them cached", typ)
		}
		for _, f := range fs.list {
			dec := json.NewDecoder(strings.NewReader(`{"` + f.name + `":null}`))
			dec.DisallowUnknownFields()
			if err := dec.Decode(reflect.New(typ).Interface()); err != nil {
				t.Errorf("%s: listed field %q is refused by encoding/json: %v", typ, f.name, err)
			}
		}
		var exported int
		for i := range typ.NumField() {
			if sf := typ.Field(i); sf.IsExported() && sf.Tag.Get("json") != "-" {
				exported++
			}
		}
		if len(fs.list) < exported {
			t.Errorf("%s: %d fields listed, the type has %d exported", typ, len(fs.list), exported)
		}
	}
}

// TestUnknownFieldErrorLeavesOtherErrors: a body whose only problem is not
// an unknown field keeps the decoder's own message.
func TestUnknownFieldErrorLeavesOtherErrors(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{"password":1}`, `{"password":"a"`, `{"password":"a",}`, `[1]`} {
		err := decodeJSON(bytes.NewReader([]byte(body)), new(account.PasswordChange))
		if err == nil || strings.Contains(err.Error(), "unknown field") || !strings.HasPrefix(err.Error(), "malformed JSON: ") {
			t.Errorf("%s: %v, want the decoder's malformed JSON message", body, err)
		}
	}
}
