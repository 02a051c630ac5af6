package admin

import (
	"net/http"
	"strconv"

	"github.com/warden-mqtt/warden/account"
	"github.com/warden-mqtt/warden/acl"
)

// maxNameLen bounds the names and labels the API checks with validText.
const maxNameLen = account.MaxNameLen

// validText applies account's rule for a name or label a person reads in
// a list (400).
func validText(field, s string) error { return account.ValidText(field, s) }

func permKey(p acl.Permission) [3]string {
	return [3]string{p.Resource, string(p.Operation), string(p.Context)}
}

// boolQuery reads an optional boolean query parameter.
func boolQuery(r *http.Request, name string) (*bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return nil, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "%s must be true or false", name)
	}
	return &b, nil
}

// listQuery reads a list parameter given repeated (names=a&names=b) or
// with brackets (names[]=a). Values are not split on commas: names may
// contain them.
func listQuery(r *http.Request, name string) []string {
	q := r.URL.Query()
	var out []string
	for _, v := range append(q[name], q[name+"[]"]...) {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}
