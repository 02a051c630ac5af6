package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// FuzzJSONKeys checks the duplicate-key pass against a slow reference: a
// recursive walk that compares every pair of keys of an object with
// strings.EqualFold. On valid JSON they agree on "has a duplicate" and on
// "too deep"; on any input the pass never panics and refuses only with
// 400.
func FuzzJSONKeys(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"a":2}`,
		`{"a":1,"A":2}`,
		`{"\u212a":1,"k":2}`,
		`{"ſ":1,"S":2}`,
		`{"a":{"b":1},"c":{"b":2}}`,
		`{"a":[{"x":1,"x":2}]}`,
		`[{"a":1},{"a":1}]`,
		`{"a":1,"b":2,"c":3,"b":4}`,
		`{"":1,"":2}`,
		`{"a":"a","b":"a"}`,
		strings.Repeat("[", 33) + strings.Repeat("]", 33),
		strings.Repeat(`{"a":`, 32) + "1" + strings.Repeat("}", 32),
		`{"a":1} {"a":1,"a":2}`,
		`{"a":1,"a"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		err := checkJSONKeys(body)
		if err != nil {
			if code, _ := status(err); code != http.StatusBadRequest {
				t.Fatalf("refused with %d: %v", code, err)
			}
		}
		if !json.Valid(body) {
			return
		}
		dup, deep := refJSONKeys(body)
		switch {
		case deep && err == nil:
			t.Fatalf("nested deeper than %d levels, accepted", MaxJSONDepth)
		case !deep && dup && err == nil:
			t.Fatal("duplicate key accepted")
		case !deep && !dup && err != nil:
			t.Fatalf("refused without a duplicate: %v", err)
		}
	})
}

// refJSONKeys reports whether a valid JSON text has an object with two
// keys equal under strings.EqualFold, and whether it nests deeper than
// MaxJSONDepth.
func refJSONKeys(body []byte) (dup, deep bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var walk func(depth int) error
	walk = func(depth int) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		d, ok := tok.(json.Delim)
		if !ok {
			return nil
		}
		if depth+1 > MaxJSONDepth {
			deep = true
		}
		var keys []string
		for dec.More() {
			if d == '{' {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				for _, o := range keys {
					if strings.EqualFold(o, k.(string)) {
						dup = true
					}
				}
				keys = append(keys, k.(string))
			}
			if err := walk(depth + 1); err != nil {
				return err
			}
		}
		_, err = dec.Token() // the closing delimiter
		return err
	}
	for walk(0) == nil {
	}
	return dup, deep // at io.EOF: the caller passes valid JSON only
}
