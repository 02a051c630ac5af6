package admin

import (
	"bytes"
	"encoding"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// jsonFields are the JSON object keys a struct type accepts, in the
// struct's order, as encoding/json matches them (the json tag's name or
// the field name; "-" and unexported fields skipped; untagged embedded
// structs flattened).
type jsonFields struct {
	list []jsonField
	// names is list's names joined for an error message.
	names string
}

type jsonField struct {
	name string
	typ  reflect.Type
}

// lookup finds the field a key decodes into: the exact name, else one
// equal under case folding, as encoding/json does.
func (f *jsonFields) lookup(key string) (jsonField, bool) {
	for _, x := range f.list {
		if x.name == key {
			return x, true
		}
	}
	for _, x := range f.list {
		if strings.EqualFold(x.name, key) {
			return x, true
		}
	}
	return jsonField{}, false
}

// fieldCache maps a struct type to its *jsonFields, built once per type.
var fieldCache sync.Map

// fieldsOf returns the fields of struct type t (cached).
func fieldsOf(t reflect.Type) *jsonFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*jsonFields)
	}
	f := &jsonFields{}
	appendFields(f, t, map[reflect.Type]bool{})
	names := make([]string, len(f.list))
	for i, x := range f.list {
		names[i] = x.name
	}
	f.names = strings.Join(names, ", ")
	got, _ := fieldCache.LoadOrStore(t, f)
	return got.(*jsonFields)
}

// appendFields adds t's fields to f, flattening untagged embedded structs
// (seen guards against an embedding cycle through pointers). A name
// already listed keeps its first place, as a shallower field wins in
// encoding/json.
func appendFields(f *jsonFields, t reflect.Type, seen map[reflect.Type]bool) {
	if seen[t] {
		return
	}
	seen[t] = true
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := sf.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if sf.Anonymous && name == "" && ft.Kind() == reflect.Struct {
			appendFields(f, ft, seen)
			continue
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		if _, dup := f.lookup(name); dup {
			continue
		}
		f.list = append(f.list, jsonField{name: name, typ: sf.Type})
	}
}

var (
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// unknownFieldError finds the first object key in raw that no field of
// the struct it would decode into accepts (v is the decode target) and
// returns a 400 naming it, where it is, and the keys accepted there;
// nil when raw has none. It walks raw itself rather than reading the
// decoder's error text, and runs only once the decoder has refused a
// body, so a well-formed request pays nothing for it.
func unknownFieldError(raw []byte, v any) error {
	t := reflect.TypeOf(v)
	if t == nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	key, where, fields, err := findUnknown(dec, t, "body")
	if err != nil || fields == nil {
		return nil
	}
	return errorf(http.StatusBadRequest, "unknown field %s in %s; accepted fields: %s", quoteKey(key), where, fields.names)
}

// findUnknown reads one JSON value from dec that decodes into t and
// returns the first unknown key in it with its path and the fields
// accepted there (fields nil: none). err is a syntax error (the
// decoder's message stands then).
func findUnknown(dec *json.Decoder, t reflect.Type, path string) (key, where string, fields *jsonFields, err error) {
	tok, err := dec.Token()
	if err != nil {
		return "", "", nil, err
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	open, isDelim := tok.(json.Delim)
	if !isDelim {
		return "", "", nil, nil // a scalar: no keys
	}
	custom := reflect.PointerTo(t).Implements(jsonUnmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType)
	switch {
	case open == '{' && t.Kind() == reflect.Struct && !custom:
		fs := fieldsOf(t)
		for dec.More() {
			k, err := objectKey(dec)
			if err != nil {
				return "", "", nil, err
			}
			f, ok := fs.lookup(k)
			if !ok {
				return k, path, fs, nil
			}
			if key, where, fields, err = findUnknown(dec, f.typ, path+"."+f.name); err != nil || fields != nil {
				return key, where, fields, err
			}
		}
	case open == '{' && t.Kind() == reflect.Map && !custom:
		for dec.More() {
			k, err := objectKey(dec)
			if err != nil {
				return "", "", nil, err
			}
			if key, where, fields, err = findUnknown(dec, t.Elem(), path+"["+quoteKey(k)+"]"); err != nil || fields != nil {
				return key, where, fields, err
			}
		}
	case open == '[' && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && !custom:
		for i := 0; dec.More(); i++ {
			if key, where, fields, err = findUnknown(dec, t.Elem(), path+"["+strconv.Itoa(i)+"]"); err != nil || fields != nil {
				return key, where, fields, err
			}
		}
	default:
		// Decoded by the type itself (time.Time), into an interface, or
		// a mismatch the decoder words: no field names to check inside.
		return "", "", nil, skipRest(dec)
	}
	_, err = dec.Token() // the closing delimiter
	return "", "", nil, err
}

// objectKey reads the next key of an object.
func objectKey(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	k, ok := tok.(string)
	if !ok {
		return "", io.ErrUnexpectedEOF
	}
	return k, nil
}

// skipRest reads dec up to the end of the object or array just opened.
func skipRest(dec *json.Decoder) error {
	for depth := 1; depth > 0; {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return nil
}
