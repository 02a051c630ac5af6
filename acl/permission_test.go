package acl

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestPermissionValidate(t *testing.T) {
	tests := []struct {
		name       string
		perm       Permission
		wantFilter bool   // the error also wraps ErrInvalidFilter
		wantText   string // "" means valid
	}{
		{"an mqtt topic filter is valid", Permission{Resource: "sport/+/#", Operation: OpRead, Context: ContextMQTT}, false, ""},
		{"'#' for readWrite is valid", Permission{Resource: "#", Operation: OpReadWrite, Context: ContextMQTT}, false, ""},
		{"an explicit $SYS filter is valid", Permission{Resource: "$SYS/#", Operation: OpRead, Context: ContextMQTT}, false, ""},
		{"a whole-level placeholder is valid", Permission{Resource: "devices/{username}/#", Operation: OpWrite, Context: ContextMQTT}, false, ""},
		{"a part-of-level placeholder is valid", Permission{Resource: "dev-{clientId}/x", Operation: OpWrite, Context: ContextMQTT}, false, ""},
		{"an http path pattern is valid", Permission{Resource: "/api/maintenance/db/+", Operation: OpReadWrite, Context: ContextHTTP}, false, ""},
		{"the http catch-all is valid", Permission{Resource: "/#", Operation: OpReadWrite, Context: ContextHTTP}, false, ""},
		{"an http placeholder is valid", Permission{Resource: "/api/users/{username}", Operation: OpRead, Context: ContextHTTP}, false, ""},
		{"an unknown operation is invalid", Permission{Resource: "a", Operation: "delete", Context: ContextMQTT}, false, "operation"},
		{"an empty operation is invalid", Permission{Resource: "a", Context: ContextMQTT}, false, "operation"},
		{"operations are case-sensitive", Permission{Resource: "a", Operation: "readwrite", Context: ContextMQTT}, false, "operation"},
		{"an unknown context is invalid", Permission{Resource: "a", Operation: OpRead, Context: "amqp"}, false, "context"},
		{"an empty context is invalid", Permission{Resource: "a", Operation: OpRead}, false, "context"},
		{"an empty resource is invalid", Permission{Operation: OpRead, Context: ContextMQTT}, true, "resource"},
		{"a misplaced '#' is invalid", Permission{Resource: "a/#/b", Operation: OpRead, Context: ContextMQTT}, true, "resource"},
		{"a glued '+' is invalid", Permission{Resource: "a/b+", Operation: OpRead, Context: ContextMQTT}, true, "resource"},
		{"a placeholder glued to '+' is invalid", Permission{Resource: "a/{username}+", Operation: OpRead, Context: ContextMQTT}, true, "resource"},
		{"NUL in a resource is invalid", Permission{Resource: "a\x00", Operation: OpRead, Context: ContextMQTT}, true, "resource"},
		{"invalid UTF-8 in a resource is invalid", Permission{Resource: "a/\xff", Operation: OpRead, Context: ContextMQTT}, true, "resource"},
		{"a resource over 65535 bytes is invalid", Permission{Resource: strings.Repeat("a", 65536), Operation: OpRead, Context: ContextMQTT}, true, "resource"},
		{"a shared subscription is not a permission", Permission{Resource: "$share/g/a/#", Operation: OpRead, Context: ContextMQTT}, true, "resource"},
		{"an http pattern without a leading slash is invalid", Permission{Resource: "api/users", Operation: OpRead, Context: ContextHTTP}, true, "resource"},
		{"an http pattern with a glued '#' is invalid", Permission{Resource: "/api/users#", Operation: OpRead, Context: ContextHTTP}, true, "resource"},
		{"an empty http pattern is invalid", Permission{Operation: OpRead, Context: ContextHTTP}, true, "resource"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.perm.Validate()
			if tt.wantText == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidPermission) {
				t.Fatalf("Validate() = %v, want an error wrapping ErrInvalidPermission", err)
			}
			if got := errors.Is(err, ErrInvalidFilter); got != tt.wantFilter {
				t.Errorf("errors.Is(err, ErrInvalidFilter) = %v, want %v (err: %v)", got, tt.wantFilter, err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("Validate() = %v, want it to name %q", err, tt.wantText)
			}
		})
	}
}

func TestOperationAllows(t *testing.T) {
	tests := []struct {
		name string
		have Operation
		want Operation
		ok   bool
	}{
		{"read allows read", OpRead, OpRead, true},
		{"read does not allow write", OpRead, OpWrite, false},
		{"read does not allow readWrite", OpRead, OpReadWrite, false},
		{"write allows write", OpWrite, OpWrite, true},
		{"write does not allow read", OpWrite, OpRead, false},
		{"readWrite allows read", OpReadWrite, OpRead, true},
		{"readWrite allows write", OpReadWrite, OpWrite, true},
		{"readWrite allows readWrite", OpReadWrite, OpReadWrite, true},
		{"an unknown operation allows nothing", "admin", OpRead, false},
		{"nothing allows an unknown operation", OpReadWrite, "admin", false},
		{"nothing allows the empty operation", OpReadWrite, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.have.Allows(tt.want); got != tt.ok {
				t.Fatalf("Operation(%q).Allows(%q) = %v, want %v", tt.have, tt.want, got, tt.ok)
			}
		})
	}
}

func TestPermissionJSONUsesTheConnectwareFieldNames(t *testing.T) {
	in := `{"id":"p1","resource":"devices/{username}/#","operation":"readWrite","context":"mqtt"}`
	var p Permission
	if err := json.Unmarshal([]byte(in), &p); err != nil {
		t.Fatal(err)
	}
	want := Permission{ID: "p1", Resource: "devices/{username}/#", Operation: OpReadWrite, Context: ContextMQTT}
	if p != want {
		t.Fatalf("decoded %+v, want %+v", p, want)
	}
	out, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Fatalf("encoded %s, want %s", out, in)
	}
	out, err = json.Marshal(Permission{Resource: "/#", Operation: OpRead, Context: ContextHTTP})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"resource":"/#","operation":"read","context":"http"}`; string(out) != want {
		t.Fatalf("encoded %s, want %s (an empty id is omitted)", out, want)
	}
}
