package dashboards

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// The committed JSON is what the code renders: edit the Go, then run
// `make dashboards`.
func TestCommittedJSONIsCurrent(t *testing.T) {
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Fatalf("%d dashboards, want farm, agents and coordinators", len(all))
	}
	for _, d := range all {
		got, err := os.ReadFile(d.File)
		if err != nil {
			t.Fatalf("%s: %v (run make dashboards)", d.File, err)
		}
		if !bytes.Equal(got, d.JSON) {
			t.Errorf("%s is stale: run make dashboards and commit the result", d.File)
		}
	}
}

// Each dashboard has a uid, a schema version, the datasource variable, and
// panels with unique ids whose every query goes through that variable.
func TestDashboardShape(t *testing.T) {
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	uids := map[string]bool{}
	for _, d := range all {
		var v struct {
			UID           string `json:"uid"`
			SchemaVersion int    `json:"schemaVersion"`
			Templating    struct {
				List []struct {
					Type, Name string
				} `json:"list"`
			} `json:"templating"`
			Panels []struct {
				ID         int    `json:"id"`
				Type       string `json:"type"`
				Title      string `json:"title"`
				Datasource struct {
					UID string `json:"uid"`
				} `json:"datasource"`
				Targets []struct {
					Expr       string `json:"expr"`
					Datasource struct {
						UID string `json:"uid"`
					} `json:"datasource"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(d.JSON, &v); err != nil {
			t.Fatalf("%s: %v", d.File, err)
		}
		if v.UID == "" || uids[v.UID] {
			t.Errorf("%s: uid %q missing or shared", d.File, v.UID)
		}
		uids[v.UID] = true
		if v.SchemaVersion < 36 {
			t.Errorf("%s: schemaVersion %d", d.File, v.SchemaVersion)
		}
		if len(v.Templating.List) == 0 || v.Templating.List[0].Type != "datasource" || v.Templating.List[0].Name != "datasource" {
			t.Errorf("%s: the first variable must be the datasource, got %+v", d.File, v.Templating.List)
		}
		ids := map[int]string{}
		queries := 0
		for _, p := range v.Panels {
			if p.ID == 0 {
				t.Errorf("%s: panel %q has no id", d.File, p.Title)
			}
			if other, ok := ids[p.ID]; ok {
				t.Errorf("%s: panels %q and %q share id %d", d.File, other, p.Title, p.ID)
			}
			ids[p.ID] = p.Title
			if p.Type == "row" {
				continue
			}
			if p.Datasource.UID != "${datasource}" {
				t.Errorf("%s: panel %q uses datasource %q, not the variable", d.File, p.Title, p.Datasource.UID)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", d.File, p.Title)
			}
			for _, q := range p.Targets {
				queries++
				if q.Datasource.UID != "${datasource}" || strings.TrimSpace(q.Expr) == "" {
					t.Errorf("%s: panel %q query %q", d.File, p.Title, q.Expr)
				}
			}
		}
		qs, err := Queries(d.JSON)
		if err != nil || len(qs) != queries {
			t.Errorf("%s: Queries found %d of %d (%v)", d.File, len(qs), queries, err)
		}
	}
}

func TestEvaluable(t *testing.T) {
	for in, want := range map[string]string{
		`rate(x{agent=~"$agent"}[$__rate_interval])`: `rate(x{agent=~".*"}[2m])`,
		`sum(montage_jobs)`:                          `sum(montage_jobs)`,
	} {
		if got := Evaluable(in, "2m"); got != want {
			t.Errorf("Evaluable(%q) = %q, want %q", in, got, want)
		}
	}
}
