package milestone

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// good is one valid milestone; the error cases edit it, so its line and
// column numbers are the ones in the expectations below:
//
//	line 6 where (value at col 12), 7 target (col 13), 8 deadline (col 15).
const good = `milestones:
  - id: atm_in_service
    title: "ATMs in service"
    line: sportello_unico
    count: assets
    where: asset.type == "atm" && asset.lifecycle in ["operational", "faulty"]
    target: 7000
    deadline: 2026-06-30
    source: {fact: F16, url: "https://tgposte.poste.it/2023/02/01/tutti-i-numeri-del-progetto-polis/"}
`

// edit replaces old by new in good, failing loudly if old is not there.
func edit(t *testing.T, pairs ...string) string {
	t.Helper()
	s := good
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("test bug: %q not in good", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

func TestLoad_Good(t *testing.T) {
	ms, err := Load("t.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 {
		t.Fatalf("got %d milestones", len(ms))
	}
	m := ms[0]
	if m.ID != "atm_in_service" || m.Title != "ATMs in service" || m.Line != LineSportelloUnico ||
		m.Count != CountAssets || m.Target != 7000 || m.Source.Fact != "F16" ||
		!strings.HasPrefix(m.Source.URL, "https://tgposte.poste.it/") || m.prog == nil ||
		!m.Deadline.Equal(time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC)) || !m.Start.Equal(DefaultStart) ||
		m.Pos != (Position{"t.yaml", 2, 5}) || !strings.HasPrefix(m.Where, `asset.type == "atm"`) {
		t.Fatalf("unexpected milestone %+v", m)
	}
	// Quoted dates, an explicit start, a block where and a sites count.
	ms, err = Load("t.yaml", []byte(edit(t,
		`    deadline: 2026-06-30`, "    deadline: \"2026-06-30\"\n    start: '2023-01-01'",
		`    count: assets`, `    count: sites`,
		`    where: asset.type == "atm" && asset.lifecycle in ["operational", "faulty"]`,
		"    where: >\n      site.kind == \"post_office\" &&\n      any(site.assets, .type == \"pv\") && assets_in(\"atm\", \"operational\") > 0")))
	if err != nil {
		t.Fatal(err)
	}
	if m := ms[0]; !m.Start.Equal(time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)) || m.Count != CountSites {
		t.Fatalf("unexpected milestone %+v", m)
	}
}

// title_it is optional and read as written; without it TitleIT is empty.
func TestLoad_TitleIT(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{good, ""},
		{edit(t, `    title: "ATMs in service"`, "    title: \"ATMs in service\"\n    title_it: \"ATM in servizio\""), "ATM in servizio"},
	} {
		ms, err := Load("t.yaml", []byte(c.src))
		if err != nil {
			t.Fatal(err)
		}
		if ms[0].TitleIT != c.want || ms[0].Title != "ATMs in service" {
			t.Errorf("TitleIT %q, Title %q; want %q, %q", ms[0].TitleIT, ms[0].Title, c.want, "ATMs in service")
		}
	}
}

func TestLoad_Errors(t *testing.T) {
	const id = `milestone "atm_in_service": `
	whereIs := func(e string) []string {
		return []string{`asset.type == "atm" && asset.lifecycle in ["operational", "faulty"]`, e}
	}
	cases := []struct {
		name string
		src  string
		want []string // each a substring of the error
	}{
		{"yaml syntax", "milestones:\n  - id: a\n    title: [\n", []string{"t.yaml:3:1: did not find expected node content"}},
		{"empty file", "", []string{"t.yaml:1:1: empty file: want a milestones list"}},
		{"comment only", "# nothing\n", []string{"t.yaml:1:1: empty file"}},
		{"top key", "milestone: []\n", []string{`t.yaml:1:1: unknown key "milestone" (want milestones)`, `t.yaml:1:1: missing key "milestones"`}},
		{"top not a mapping", "- a\n", []string{"t.yaml:1:1: want a mapping, got a list"}},
		{"milestones not a list", "milestones: 3\n", []string{`t.yaml:1:13: want a list, got "3"`}},
		{"empty list", "milestones: []\n", []string{"t.yaml:1:13: empty milestones list"}},
		{"milestone not a mapping", "milestones:\n  - atm\n", []string{`t.yaml:2:5: want a mapping, got "atm"`}},
		{"missing keys", "milestones:\n  - id: a\n    title: t\n", []string{
			`t.yaml:2:5: milestone "a": missing key "line"`, `t.yaml:2:5: milestone "a": missing key "count"`,
			`t.yaml:2:5: milestone "a": missing key "where"`, `t.yaml:2:5: milestone "a": missing key "target"`,
			`t.yaml:2:5: milestone "a": missing key "deadline"`, `t.yaml:2:5: milestone "a": missing key "source"`}},
		{"missing id", edit(t, "  - id: atm_in_service\n    title:", "  - title:"), []string{`t.yaml:2:5: missing key "id"`}},
		{"unknown key", edit(t, "    target: 7000", "    target: 7000\n    colour: red"), []string{
			`t.yaml:8:5: ` + id + `unknown key "colour" (want id, title, title_it, line, count, where, target, deadline, start, source)`}},
		{"unknown key suggestion", edit(t, "    deadline:", "    dedline:"), []string{
			`t.yaml:8:5: ` + id + `unknown key "dedline" (did you mean deadline?)`, `t.yaml:2:5: ` + id + `missing key "deadline"`}},
		{"empty title_it", edit(t, `    title: "ATMs in service"`, "    title: \"ATMs in service\"\n    title_it: \" \""), []string{`t.yaml:4:15: ` + id + `empty title_it`}},
		{"title_it not a string", edit(t, `    title: "ATMs in service"`, "    title: \"ATMs in service\"\n    title_it: [a]"), []string{`t.yaml:4:15: ` + id + `want a string, got a list`}},
		{"duplicate key", edit(t, "    target: 7000", "    target: 7000\n    target: 3000"), []string{`t.yaml:8:5: ` + id + `duplicate key "target"`}},
		{"bad id upper", edit(t, "id: atm_in_service", "id: ATM-1"), []string{`t.yaml:2:9: bad id "ATM-1": want lower case letters, digits and _`}},
		{"bad id digit first", edit(t, "id: atm_in_service", "id: 7000_atm"), []string{`t.yaml:2:9: bad id "7000_atm"`}},
		{"id not a string", edit(t, "id: atm_in_service", "id: [a]"), []string{`t.yaml:2:9: want a string, got a list`}},
		{"duplicate id", good + strings.TrimPrefix(good, "milestones:\n"), []string{`t.yaml:10:9: ` + id + `duplicate id, first defined at t.yaml:2:9`}},
		{"empty title", edit(t, `title: "ATMs in service"`, `title: " "`), []string{`t.yaml:3:12: ` + id + `empty title`}},
		{"bad line", edit(t, "line: sportello_unico", "line: sportello_unic"), []string{
			`t.yaml:4:11: ` + id + `bad line "sportello_unic": want programma, sportello_unico, spazi_per_italia (did you mean sportello_unico?)`}},
		{"bad count", edit(t, "count: assets", "count: asset"), []string{`t.yaml:5:12: ` + id + `bad count "asset": want assets, sites (did you mean assets?)`}},
		{"zero target", edit(t, "target: 7000", "target: 0"), []string{`t.yaml:7:13: ` + id + `bad target 0: want a positive whole number`}},
		{"negative target", edit(t, "target: 7000", "target: -5"), []string{`t.yaml:7:13: ` + id + `bad target -5: want a positive whole number`}},
		{"fractional target", edit(t, "target: 7000", "target: 7000.5"), []string{`t.yaml:7:13: ` + id + `bad target "7000.5": want a positive whole number`}},
		{"string target", edit(t, "target: 7000", `target: "7000"`), []string{`t.yaml:7:13: ` + id + `bad target "7000": want a positive whole number`}},
		{"huge target", edit(t, "target: 7000", "target: 99999999999999999999"), []string{`t.yaml:7:13: ` + id + `bad target`}},
		{"no such day", edit(t, "deadline: 2026-06-30", "deadline: 2026-02-30"), []string{`t.yaml:8:15: ` + id + `bad deadline "2026-02-30": no such day`}},
		{"date format", edit(t, "deadline: 2026-06-30", "deadline: 30/06/2026"), []string{`t.yaml:8:15: ` + id + `bad deadline "30/06/2026": want a date as YYYY-MM-DD`}},
		{"date with time", edit(t, "deadline: 2026-06-30", "deadline: 2026-06-30T10:00:00Z"), []string{`t.yaml:8:15: ` + id + `bad deadline`}},
		{"year range", edit(t, "deadline: 2026-06-30", "deadline: 2206-06-30"), []string{`t.yaml:8:15: ` + id + `bad deadline "2206-06-30": year out of range`}},
		{"start after deadline", edit(t, "deadline: 2026-06-30", "deadline: 2026-06-30\n    start: 2026-07-01"), []string{
			`t.yaml:9:12: ` + id + `start 2026-07-01 is not before the deadline 2026-06-30`}},
		{"deadline before default start", edit(t, "deadline: 2026-06-30", "deadline: 2021-06-30"), []string{
			`t.yaml:2:5: ` + id + `deadline 2021-06-30 is not after the default start 2022-01-01: set start`}},
		{"source missing url", edit(t, `source: {fact: F16, url: "https://tgposte.poste.it/2023/02/01/tutti-i-numeri-del-progetto-polis/"}`, `source: {fact: F16}`), []string{
			`t.yaml:9:13: ` + id + `missing key "url"`}},
		{"source bad fact and url", edit(t, `source: {fact: F16, url: "https://tgposte.poste.it/2023/02/01/tutti-i-numeri-del-progetto-polis/"}`, `source: {fact: 16, url: "tgposte.poste.it", note: x}`), []string{
			`t.yaml:9:20: ` + id + `bad fact "16": want a fact id such as F16`,
			`t.yaml:9:29: ` + id + `bad url "tgposte.poste.it": want an http or https address`,
			`t.yaml:9:49: ` + id + `unknown key "note" in source (want fact, url)`}},
		{"source not a mapping", edit(t, `source: {fact: F16, url: "https://tgposte.poste.it/2023/02/01/tutti-i-numeri-del-progetto-polis/"}`, `source: F16`), []string{
			`t.yaml:9:13: ` + id + `want a mapping, got "F16"`}},
		{"alias", "milestones:\n  - &m {id: a}\n  - *m\n", []string{`t.yaml:3:5: aliases (*name) are not supported`}},

		// where: faults inside the expression are positioned in the file.
		{"where syntax", edit(t, whereIs(`asset.type == "atm" &&`)...), []string{`t.yaml:6:`, id + `where: unexpected token EOF`}},
		{"where not bool", edit(t, whereIs(`asset.type`)...), []string{`t.yaml:6:12: ` + id + `where: expected bool, but got string`}},
		{"where unknown name", edit(t, whereIs(`aset.type == "atm"`)...), []string{`t.yaml:6:12: ` + id + `where: unknown name aset (did you mean asset?)`}},
		{"where unknown field", edit(t, whereIs(`asset.type == "atm" && site.regoin == "Lazio"`)...), []string{
			`t.yaml:6:40: ` + id + `where: type site has no field regoin (did you mean region?)`}},
		{"where asset in sites", edit(t, "count: assets", "count: sites"), []string{
			`t.yaml:6:12: ` + id + `where: asset is not available with count: sites`}},
		{"where unknown state", edit(t, `"operational", "faulty"`, `"operational", "fauty"`), []string{
			`t.yaml:6:70: ` + id + `where: unknown lifecycle state "fauty" (did you mean "faulty"?)`}},
		{"where unknown type", edit(t, `asset.type == "atm"`, `asset.type == "bancomat"`), []string{
			`t.yaml:6:26: ` + id + `where: unknown asset type "bancomat" (want one of atm,`}},
		{"where type on the left", edit(t, `asset.type == "atm"`, `site.id != "" && "atn" == asset.type`), []string{
			`t.yaml:6:29: ` + id + `where: unknown asset type "atn" (did you mean "atm"?)`}},
		{"where unknown kind", edit(t, whereIs(`site.kind == "coworkin" && asset.type == "desk"`)...), []string{
			`t.yaml:6:25: ` + id + `where: unknown site kind "coworkin" (did you mean "coworking"?)`}},
		{"where predicate type", edit(t, whereIs(`any(site.assets, .type == "pvv")`)...), []string{
			`t.yaml:6:38: ` + id + `where: unknown asset type "pvv" (did you mean "pv"?)`}},
		{"assets_in without state", edit(t, whereIs(`assets_in("atm") > 0`)...), []string{
			`t.yaml:6:12: ` + id + `where: assets_in wants an asset type and at least one lifecycle state`}},
		{"assets_in bad state", edit(t, whereIs(`assets_in("atm", "operational", "broken") > 0`)...), []string{
			`t.yaml:6:44: ` + id + `where: unknown lifecycle state "broken"`}},
		{"all_assets_in no state", edit(t, whereIs(`all_assets_in()`)...), []string{
			`t.yaml:6:12: ` + id + `where: all_assets_in wants at least one lifecycle state`}},
		{"assets_in wrong type", edit(t, whereIs(`assets_in(1, "operational") > 0`)...), []string{`t.yaml:6:`, id + `where: cannot use int as argument`}},
		{"now disabled", edit(t, whereIs(`now().Year() > 2000`)...), []string{`t.yaml:6:12: ` + id + `where: unknown name now`}},
		{"where empty", edit(t, whereIs(`""`)...), []string{`t.yaml:6:12: ` + id + `where: empty expression`}},
		{"where not a string", edit(t, whereIs(`[a]`)...), []string{`t.yaml:6:12: ` + id + `want a string, got a list`}},
		{"where double quoted", edit(t, whereIs(`"aset.type == 'atm'"`)...), []string{`t.yaml:6:13: ` + id + `where: unknown name aset`}},
		{"where block", edit(t, whereIs("|\n      asset.type == \"atm\" &&\n        asset.lifecycle in [\"operationl\"]")...), []string{
			`t.yaml:8:29: ` + id + `where: unknown lifecycle state "operationl" (did you mean "operational"?)`}},
		{"where folded", edit(t, whereIs(">\n      asset.type == \"atm\" &&\n        site.nme == \"x\"")...), []string{
			`t.yaml:8:14: ` + id + `where: type site has no field nme (did you mean name?)`}},
		{"where too long", edit(t, whereIs(strings.Repeat("true && ", 600)+"true")...), []string{`t.yaml:6:12: ` + id + `where: expression too long`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ms, err := Load("t.yaml", []byte(c.src))
			if err == nil {
				t.Fatalf("loaded %d milestones, want an error", len(ms))
			}
			var el ErrorList
			if !errors.As(err, &el) {
				t.Fatalf("error is %T, want ErrorList: %v", err, err)
			}
			if ms != nil {
				t.Fatalf("milestones returned with an error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

// Several faults in several milestones are all reported, in file order.
func TestLoad_CollectsErrors(t *testing.T) {
	src := good + `  - id: b
    title: B
    line: programma
    count: sites
    where: site.kind == "post_offce"
    target: -1
    deadline: 2026-06-30
    source: {fact: F1, url: "https://example.org/"}
`
	src = strings.Replace(src, "target: 7000", "target: 0", 1)
	_, err := Load("t.yaml", []byte(src))
	var el ErrorList
	if !errors.As(err, &el) {
		t.Fatalf("want an ErrorList, got %v", err)
	}
	want := []string{
		`t.yaml:7:13: milestone "atm_in_service": bad target 0`,
		`t.yaml:14:25: milestone "b": where: unknown site kind "post_offce"`,
		`t.yaml:15:13: milestone "b": bad target -1`,
	}
	if len(el) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(el), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(el[i].Error(), w) {
			t.Errorf("error %d is %q, want prefix %q", i, el[i].Error(), w)
		}
	}
}

// A file full of mistakes yields a bounded list that says so.
func TestLoad_ErrorBound(t *testing.T) {
	var b strings.Builder
	b.WriteString("milestones:\n")
	for i := range 30 {
		fmt.Fprintf(&b, "  - {id: m%d, title: t, line: programma, count: sites, where: 'true', target: 0, deadline: 2026-01-01, source: {fact: F1, url: 'https://x.it'}}\n", i)
	}
	_, err := Load("t.yaml", []byte(b.String()))
	var el ErrorList
	if !errors.As(err, &el) {
		t.Fatalf("want an ErrorList, got %v", err)
	}
	if len(el) != maxErrors+1 || !strings.Contains(el[maxErrors].Msg, "more than 20 errors") {
		t.Fatalf("got %d errors, last %v", len(el), el[len(el)-1])
	}
}

func TestLoadFile_Missing(t *testing.T) {
	_, err := LoadFile("testdata/does-not-exist.yaml")
	if err == nil || !strings.Contains(err.Error(), "cannot read milestone file") {
		t.Fatalf("got %v", err)
	}
}
