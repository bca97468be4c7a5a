package milestone

import (
	"errors"
	"strings"
	"testing"
)

func TestLoadFactsShared(t *testing.T) {
	facts, err := LoadFactsFile("../../" + DefaultFactsPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(facts) != 47 {
		t.Fatalf("got %d facts, want the 47 rows of README section 7", len(facts))
	}
	f30, ok := FactByID(facts, "F30")
	if !ok || !f30.HasValue || f30.Value != 2548 || f30.Type != FactProgress || f30.Date.Format("2006-01-02") != "2024-11-30" {
		t.Fatalf("F30 = %+v", f30)
	}
	f44, _ := FactByID(facts, "F44")
	if f44.HasValue || f44.Text != "100/80/70" {
		t.Fatalf("F44 = %+v; want the compound value kept as text", f44)
	}
}

func TestParseFactsErrors(t *testing.T) {
	const head = "id,data,linea,tipo,metrica,valore,unita,fonte_url,tipo_fonte,nota\n"
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "line 1: the table is empty"},
		{"header", "id,date,linea,tipo,metrica,valore,unita,fonte_url,tipo_fonte,nota\n", `line 1: column 2 is "date"; want "data"`},
		{"date", head + "F1,2024-13-01,programma,atto,x,,,https://x.it,y,\n", `line 2: fact F1: data "2024-13-01" is not a date`},
		{"line", head + "F1,2024-01-01,altro,atto,x,,,https://x.it,y,\n", `line 2: fact F1: linea "altro"`},
		{"type", head + "F1,2024-01-01,programma,boh,x,,,https://x.it,y,\n", `line 2: fact F1: tipo "boh"`},
		{"url", head + "F1,2024-01-01,programma,atto,x,,,ftp://x,y,\n", `line 2: fact F1: fonte_url "ftp://x"`},
		{"dup", head + "F1,2024-01-01,programma,atto,x,,,https://x.it,y,\nF1,2024-01-01,programma,atto,x,,,https://x.it,y,\n", "line 3: fact F1 appears twice"},
		{"fields", head + "F1,2024-01-01\n", "line 2: wrong number of fields"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFacts(strings.NewReader(tc.in))
			var fe *FactError
			if err == nil || !errors.As(err, &fe) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("got %v; want a FactError starting %q", err, tc.want)
			}
		})
	}
}

func FuzzParseFacts(f *testing.F) {
	f.Add("id,data,linea,tipo,metrica,valore,unita,fonte_url,tipo_fonte,nota\nF1,2024-01-01,programma,atto,x,3,,https://x.it,y,\n")
	f.Add("\ufeffid,data\n\"")
	f.Fuzz(func(t *testing.T, s string) {
		facts, err := ParseFacts(strings.NewReader(s))
		if err == nil {
			for _, x := range facts {
				if x.ID == "" || x.Date.IsZero() {
					t.Fatalf("accepted a fact without id or date: %+v", x)
				}
			}
		} else if facts != nil {
			t.Fatal("facts returned with an error")
		}
	})
}
