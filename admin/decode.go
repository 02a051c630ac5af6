package admin

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode"
)

// MaxBodyBytes bounds every request body; larger ones get 413.
const MaxBodyBytes = 1 << 20

// MaxPublicBodyBytes bounds the body of a route that needs no token
// (login, logout, token exchange, MFA login, registry registration,
// enhanced auth): anyone can send those, and none needs more.
const MaxPublicBodyBytes = 64 << 10

// MaxJSONDepth bounds how deeply a JSON request body may nest objects and
// arrays (400 beyond). No request of the API nests more than four levels;
// the bound keeps the duplicate-key pass's memory proportional to the
// body's keys, not to its brackets.
const MaxJSONDepth = 32

// rawBodyRoutes take a body that is not JSON, with its own content types:
// a backup archive (raw or multipart, maintenance.go) and PEM
// certificates (certificates.go, which asks for JSON when the body is a
// JSON string). Every other route takes JSON only.
var rawBodyRoutes = map[string]bool{
	"POST /api/maintenance/db/restore": true,
	"POST /api/certificates":           true,
}

// requireJSON refuses a request that carries a body not declared as JSON
// (415), on every route but rawBodyRoutes, whether or not the handler
// reads the body. A browser sends a cross-origin text/plain or form body
// without asking first (no CORS preflight); application/json it must ask
// for, so no page can make a visitor's browser post JSON here. JSON is
// UTF-8 (RFC 8259 section 8.1): another charset is refused as well.
func requireJSON(r *http.Request, pattern string) error {
	if rawBodyRoutes[pattern] || r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil
	}
	if r.ContentLength < 0 {
		// Chunked: an empty body carries no content type to check.
		br := bufio.NewReaderSize(r.Body, 16)
		_, err := br.Peek(1)
		r.Body = struct {
			io.Reader
			io.Closer
		}{br, r.Body}
		if err != nil {
			return nil // empty, or unreadable: the handler reports it
		}
	}
	return jsonContentType(r)
}

// jsonContentType checks that the request declares a JSON body.
func jsonContentType(r *http.Request) error {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return errorf(http.StatusUnsupportedMediaType, "the request body must be JSON sent with Content-Type: application/json")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return errorf(http.StatusUnsupportedMediaType, "JSON request bodies must be UTF-8 (charset=utf-8)")
	}
	return nil
}

// decode reads one JSON value into v: unknown fields, duplicate keys,
// trailing data and bodies over MaxBodyBytes are errors (400, 400, 400,
// 413). The handler wrapper has checked the content type (requireJSON).
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	return decodeJSON(r.Body, v)
}

// decodeOptional is decode for a body that may be absent (then v is left
// as it is).
func decodeOptional(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	br := bufio.NewReader(r.Body)
	if _, err := br.Peek(1); errors.Is(err, io.EOF) {
		return nil
	}
	return decodeJSON(br, v)
}

// decodeJSON is decode without the HTTP parts (fuzzed directly).
func decodeJSON(body io.Reader, v any) error {
	raw, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return errorf(http.StatusBadRequest, "cannot read the request body")
	}
	if err := checkJSONKeys(raw); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return errorf(http.StatusBadRequest, "empty request body; JSON expected")
		}
		if uf := unknownFieldError(raw, v); uf != nil {
			return uf
		}
		return errorf(http.StatusBadRequest, "malformed JSON: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return errorf(http.StatusBadRequest, "malformed JSON: data after the JSON value")
	}
	return nil
}

// checkJSONKeys refuses a body in which an object names a key twice, at
// any depth (400 naming the key), or that nests deeper than MaxJSONDepth.
// encoding/json keeps the last of duplicate keys and matches struct
// fields without regard to case, so {"roles":[],"Roles":["x"]} would
// mean to warden what another parser (a proxy, an audit tool, a WAF)
// reads differently; keys equal under Unicode case folding count as
// duplicates for the same reason. Syntax errors are left to the decoder,
// which words them.
func checkJSONKeys(raw []byte) error {
	// One frame per open object or array; an object remembers its keys
	// folded, in a map from its second key on.
	type frame struct {
		object  bool
		wantKey bool
		n       int
		first   string
		keys    map[string]struct{}
	}
	var stack []*frame
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // io.EOF, or a syntax error the decoder reports
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if key, ok := tok.(string); ok && top != nil && top.object && top.wantKey {
			top.wantKey = false
			k := foldKey(key)
			switch {
			case top.n == 0:
				top.first = k
			case top.n == 1 && k == top.first, top.n > 1 && hasKey(top.keys, k):
				return errorf(http.StatusBadRequest, "malformed JSON: duplicate key %s (keys are compared without regard to case)", quoteKey(key))
			default:
				if top.keys == nil {
					top.keys = map[string]struct{}{top.first: {}}
				}
				top.keys[k] = struct{}{}
			}
			top.n++
			continue
		}
		if top != nil && top.object {
			top.wantKey = true // a value starts; a key (or the end) follows it
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) == MaxJSONDepth {
				return errorf(http.StatusBadRequest, "malformed JSON: nested deeper than %d levels", MaxJSONDepth)
			}
			stack = append(stack, &frame{object: tok == json.Delim('{'), wantKey: true})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
	}
}

func hasKey(keys map[string]struct{}, k string) bool {
	_, ok := keys[k]
	return ok
}

// foldKey maps a key to one representative of its case-folding class:
// foldKey(a) == foldKey(b) exactly when strings.EqualFold(a, b), the
// equality encoding/json uses to match keys to struct fields.
func foldKey(k string) string {
	var b strings.Builder
	b.Grow(len(k))
	for _, r := range k {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}

// quoteKey quotes a key for an error message, cut to 64 bytes: the key
// is the client's own text, a name rather than a value, but unbounded.
func quoteKey(k string) string {
	if len(k) > 64 {
		k = strings.ToValidUTF8(k[:64], "") + "..."
	}
	return strconv.Quote(k)
}

// jsonProblem describes a decoding error without echoing the input
// (which may hold a password).
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "syntax error at byte " + strconv.FormatInt(se.Offset, 10)
	case errors.As(err, &te):
		return "field " + strconv.Quote(te.Field) + " must be " + te.Type.String()
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of input"
	}
	// Unknown-field errors name the field, which is safe to show.
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return msg
}

// pageParams reads pageNumber (from 1, default 1) and rowsPerPage (1..max,
// default def) from the query.
func pageParams(r *http.Request, def, max int, required bool) (page, rows int, err error) {
	page, rows = 1, def
	q := r.URL.Query()
	if v := q.Get("pageNumber"); v != "" {
		page, err = strconv.Atoi(v)
		if err != nil || page < 1 {
			return 0, 0, errorf(http.StatusBadRequest, "pageNumber must be an integer of at least 1")
		}
	} else if required {
		return 0, 0, errorf(http.StatusBadRequest, "pageNumber is required")
	}
	if v := q.Get("rowsPerPage"); v != "" {
		rows, err = strconv.Atoi(v)
		if err != nil || rows < 1 || rows > max {
			return 0, 0, errorf(http.StatusBadRequest, "rowsPerPage must be an integer from 1 to %d", max)
		}
	} else if required {
		return 0, 0, errorf(http.StatusBadRequest, "rowsPerPage is required")
	}
	return page, rows, nil
}

// pagination is the pagination block of the seed's paged lists.
type pagination struct {
	TotalPages      int  `json:"totalPages"`
	TotalRows       int  `json:"totalRows"`
	TotalRowsInPage int  `json:"totalRowsInPage"`
	CurrentPage     int  `json:"currentPage"`
	NextPage        *int `json:"nextPage"`
	RowsPerPage     int  `json:"rowsPerPage"`
}

// paginate returns the [from, to) bounds of page within total rows and
// its pagination block. nextPage is null on the last page.
func paginate(total, page, rows int) (from, to int, p pagination) {
	pages := (total + rows - 1) / rows
	from = total
	if page-1 < pages { // compared first: (page-1)*rows may overflow
		from = (page - 1) * rows
	}
	to = min(from+rows, total)
	p = pagination{TotalPages: pages, TotalRows: total, TotalRowsInPage: to - from, CurrentPage: page, RowsPerPage: rows}
	if page < pages {
		n := page + 1
		p.NextPage = &n
	}
	return from, to, p
}
