package library

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseCSV(t *testing.T) {
	in := "\ufeffStreamer,url,at,duration,title,date,score,tags\n" +
		"alice,https://cdn.example/a.mp4,1:02:03,30,Big play,2026-11-02,7,clutch;Funny\n" +
		"bob,https://cdn.example/b.m3u8,95,,,,,\n"
	rows, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Row{
		{Line: 2, Streamer: "alice", URL: "https://cdn.example/a.mp4", At: 3723, Duration: 30, Title: "Big play", Date: "2026-11-02", Score: 7, Tags: []string{"clutch", "funny"}},
		{Line: 3, Streamer: "bob", URL: "https://cdn.example/b.m3u8", At: 95, Duration: DefaultDuration},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("rows\n got %+v\nwant %+v", rows, want)
	}
}

func TestParseJSONLines(t *testing.T) {
	in := `{"streamer":"alice","url":"https://cdn.example/a.mp4","at":"2:00","duration":45,"score":"3","tags":["x"]}` + "\n\n" +
		`{"streamer":"bob","url":"https://cdn.example/b.mp4","at":12.5,"date":"2026-11-03","duration":null}` + "\n"
	rows, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].At != 120 || rows[0].Duration != 45 || rows[0].Score != 3 || rows[1].Line != 3 || rows[1].At != 12.5 || rows[1].Duration != 60 {
		t.Fatalf("rows %+v", rows)
	}
}

// A file with bad rows is refused whole, each bad row named by its line
// and field.
func TestBadRowsNameTheirLine(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     []string
	}{
		{"csv", "streamer,url,at,duration,date\n" +
			"alice,https://cdn.example/a.mp4,10,,\n" +
			"bob,file:///etc/passwd,10,,\n" +
			",https://cdn.example/c.mp4,10,,\n" +
			"carol,https://cdn.example/c.mp4,soon,,\n" +
			"dave,https://cdn.example/d.mp4,10,900,\n" +
			"erin,https://cdn.example/e.mp4,10,,2026-13-01\n",
			[]string{"line 3: url:", "line 4: streamer: is required", "line 5: at:", "line 6: duration: must be between 1 and 600", "line 7: date: must be YYYY-MM-DD"}},
		{"json", `{"streamer":"a","url":"https://x/a.mp4","at":1}` + "\n" + `{"streamer":"b","url":"https://x/b.mp4","at":1,"colour":"red"}` + "\n" + `not json` + "\n",
			[]string{"line 2: not a JSON object", "line 3: not a JSON object"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rows, err := Parse(strings.NewReader(c.in))
			var errs Errors
			if rows != nil || !errors.As(err, &errs) || len(errs) != len(c.want) {
				t.Fatalf("rows %v, err %v", rows, err)
			}
			for i, w := range c.want {
				if !strings.HasPrefix(errs[i].Error(), w) {
					t.Errorf("error %d = %q, want it to start %q", i, errs[i].Error(), w)
				}
			}
			if !strings.Contains(err.Error(), "nothing imported") {
				t.Errorf("the summary does not say nothing was imported: %v", err)
			}
		})
	}
}

func TestHeaderProblems(t *testing.T) {
	for in, want := range map[string]string{
		"streamer,url\nalice,https://x/a.mp4\n":         "line 1: at: the header names no such column",
		"streamer,url,at,colour\na,https://x/a.mp4,1,r": "line 1: colour: is not a column",
	} {
		if _, err := Parse(strings.NewReader(in)); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
	if rows, err := Parse(strings.NewReader("  \n")); rows != nil || err != nil {
		t.Errorf("an empty file: %v %v", rows, err)
	}
}

func TestIDIsBySourceAndStart(t *testing.T) {
	if ID("https://x/a.mp4", 10) != ID("https://x/a.mp4", 10.0004) || ID("https://x/a.mp4", 10) == ID("https://x/a.mp4", 11) || ID("https://x/a.mp4", 10) == ID("https://x/b.mp4", 10) {
		t.Error("IDs do not follow (url, at)")
	}
}
