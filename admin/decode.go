package admin

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// MaxBodyBytes bounds every request body; larger ones get 413.
const MaxBodyBytes = 1 << 20

// decode reads one JSON value into v: unknown fields, trailing data and
// bodies over MaxBodyBytes are errors (400, 400, 413).
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
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return errorf(http.StatusBadRequest, "empty request body; JSON expected")
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
