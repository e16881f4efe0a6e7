// Package library reads and checks highlight rows for the library: CSV
// with a header row, or JSON lines. montagectl imports files with it and
// the coordinator reads feeds with it, so both refuse the same rows with
// the same words.
package library

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/stream-montages/montage/internal/spec"
)

// DefaultDuration is a highlight's length when a row gives none.
const DefaultDuration = 60.0

// Limits of one row's fields.
const (
	MaxStreamer = 100
	MaxTitle    = 200
	MaxTags     = 20
	MaxTag      = 50
	// MaxRows bounds one file or feed answer.
	MaxRows = 100_000
)

// Columns are the names a CSV header may use, in any order.
var Columns = []string{"streamer", "url", "at", "duration", "title", "date", "score", "tags"}

// Row is one checked highlight.
type Row struct {
	Line     int // in the file, from 1 (the CSV header is line 1)
	Streamer string
	URL      string
	At       float64
	Duration float64
	Title    string
	Date     string // YYYY-MM-DD or ""
	Score    int64
	Tags     []string
}

// ID names a highlight by its source and start: importing the same row
// again updates it rather than adding another.
func ID(url string, at float64) string {
	sum := sha256.Sum256([]byte(url + "\x00" + strconv.FormatFloat(at, 'f', 3, 64)))
	return "h" + hex.EncodeToString(sum[:8])
}

// RowError is one refused row.
type RowError struct {
	Line   int
	Field  string
	Reason string
}

func (e RowError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
	}
	return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Reason)
}

// Errors are all the refused rows of a file: none of it is imported.
type Errors []RowError

func (e Errors) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d bad row(s), nothing imported", len(e))
	for i, r := range e {
		if i == 20 {
			fmt.Fprintf(&b, "\n  … and %d more", len(e)-20)
			break
		}
		b.WriteString("\n  " + r.Error())
	}
	return b.String()
}

// Fields are one row's values as given, before checking.
type Fields struct {
	Streamer, URL, At, Duration, Title, Date, Score string
	Tags                                            []string
}

// Check turns fields into a row, or says which field is wrong and why.
func Check(line int, f Fields) (Row, error) {
	bad := func(field, format string, args ...any) (Row, error) {
		return Row{}, RowError{Line: line, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	r := Row{Line: line, Streamer: strings.TrimSpace(f.Streamer), URL: strings.TrimSpace(f.URL), Title: strings.TrimSpace(f.Title),
		Date: strings.TrimSpace(f.Date)}
	switch {
	case r.Streamer == "":
		return bad("streamer", "is required")
	case len(r.Streamer) > MaxStreamer || !utf8.ValidString(r.Streamer):
		return bad("streamer", "must be valid UTF-8 of at most %d bytes", MaxStreamer)
	}
	if err := spec.CheckSourceURL(r.URL); err != nil {
		return bad("url", "%v", err)
	}
	at := strings.TrimSpace(f.At)
	if at == "" {
		return bad("at", "is required")
	}
	v, err := spec.ParseTimestamp(at)
	if err != nil {
		return bad("at", "%v", err)
	}
	r.At = v
	r.Duration = DefaultDuration
	if d := strings.TrimSpace(f.Duration); d != "" {
		v, err := spec.ParseTimestamp(d)
		if err != nil {
			return bad("duration", "%v", err)
		}
		r.Duration = v
	}
	if r.Duration < 1 || r.Duration > spec.MaxDuration {
		return bad("duration", "must be between 1 and %g seconds, got %g", spec.MaxDuration, r.Duration)
	}
	if len(r.Title) > MaxTitle || !utf8.ValidString(r.Title) {
		return bad("title", "must be valid UTF-8 of at most %d bytes", MaxTitle)
	}
	if r.Date != "" {
		if _, err := time.Parse(time.DateOnly, r.Date); err != nil {
			return bad("date", "must be YYYY-MM-DD, got %q", r.Date)
		}
	}
	if s := strings.TrimSpace(f.Score); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return bad("score", "must be a whole number, got %q", s)
		}
		r.Score = v
	}
	for _, t := range f.Tags {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" {
			continue
		}
		if len(t) > MaxTag || !utf8.ValidString(t) || strings.ContainsAny(t, ",;|") {
			return bad("tags", "each tag is at most %d bytes without , ; or |, got %q", MaxTag, t)
		}
		r.Tags = append(r.Tags, t)
	}
	if len(r.Tags) > MaxTags {
		return bad("tags", "at most %d tags", MaxTags)
	}
	return r, nil
}

// Parse reads a whole file or feed answer: JSON lines when its first
// character is '{', CSV with a header row otherwise. Any bad row fails it
// all, with every bad row named.
func Parse(r io.Reader) ([]Row, error) {
	br := bufio.NewReader(r)
	for {
		b, err := br.Peek(1)
		if err != nil {
			return nil, nil // empty
		}
		if b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n' || b[0] == 0xEF { // 0xEF: a UTF-8 BOM
			if b[0] == 0xEF {
				_, _ = br.Discard(3)
			} else {
				_, _ = br.Discard(1)
			}
			continue
		}
		if b[0] == '{' {
			return parseJSONLines(br)
		}
		return parseCSV(br)
	}
}

func parseCSV(r io.Reader) ([]Row, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, RowError{Line: 1, Reason: fmt.Sprintf("not CSV with a header row: %v", err)}
	}
	col := map[string]int{}
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(h))
		known := false
		for _, c := range Columns {
			known = known || c == name
		}
		if !known {
			return nil, RowError{Line: 1, Field: name, Reason: "is not a column; use " + strings.Join(Columns, ",")}
		}
		col[name] = i
	}
	for _, need := range []string{"streamer", "url", "at"} {
		if _, ok := col[need]; !ok {
			return nil, RowError{Line: 1, Field: need, Reason: "the header names no such column, which is required"}
		}
	}
	var set rowSet
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				line = pe.Line
			}
			set.errs = append(set.errs, RowError{Line: line, Reason: err.Error()})
			if pe == nil {
				break
			}
			continue
		}
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(rec) {
				return rec[i]
			}
			return ""
		}
		var tags []string
		if t := get("tags"); t != "" {
			tags = strings.FieldsFunc(t, func(r rune) bool { return r == ';' || r == '|' })
		}
		if err := set.check(line, Fields{Streamer: get("streamer"), URL: get("url"), At: get("at"), Duration: get("duration"),
			Title: get("title"), Date: get("date"), Score: get("score"), Tags: tags}); err != nil {
			return nil, err
		}
	}
	return set.result()
}

// rowSet gathers a file's rows and its refused rows.
type rowSet struct {
	rows []Row
	errs Errors
}

// check adds a row or its refusal; an error ends the file (too many rows).
func (s *rowSet) check(line int, f Fields) error {
	row, err := Check(line, f)
	if err != nil {
		s.errs = append(s.errs, err.(RowError))
	} else {
		s.rows = append(s.rows, row)
	}
	if len(s.rows)+len(s.errs) > MaxRows {
		return RowError{Line: line, Reason: fmt.Sprintf("more than %d rows; split the file", MaxRows)}
	}
	return nil
}

// result is the rows, or every refusal: none of a file with a bad row.
func (s *rowSet) result() ([]Row, error) {
	if len(s.errs) > 0 {
		return nil, s.errs
	}
	return s.rows, nil
}

// jsonRow is a JSON line; at, duration and score may be numbers or strings.
type jsonRow struct {
	Streamer string          `json:"streamer"`
	URL      string          `json:"url"`
	At       json.RawMessage `json:"at"`
	Duration json.RawMessage `json:"duration"`
	Title    string          `json:"title"`
	Date     string          `json:"date"`
	Score    json.RawMessage `json:"score"`
	Tags     []string        `json:"tags"`
}

func rawString(m json.RawMessage) string {
	if string(m) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(m, &s) == nil {
		return s
	}
	return strings.TrimSpace(string(m))
}

func parseJSONLines(r io.Reader) ([]Row, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var set rowSet
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var jr jsonRow
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&jr); err != nil {
			set.errs = append(set.errs, RowError{Line: line, Reason: "not a JSON object of " + strings.Join(Columns, ", ") + ": " + err.Error()})
			continue
		}
		if err := set.check(line, Fields{Streamer: jr.Streamer, URL: jr.URL, At: rawString(jr.At), Duration: rawString(jr.Duration),
			Title: jr.Title, Date: jr.Date, Score: rawString(jr.Score), Tags: jr.Tags}); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		set.errs = append(set.errs, RowError{Line: line + 1, Reason: err.Error()})
	}
	return set.result()
}
