package opendata

import "testing"

// BenchmarkApparatiCSV builds apparati.csv for a fleet the size of the
// programme (4,800 offices, 46,080 assets): the cost of the first download
// after each snapshot.
func BenchmarkApparatiCSV(b *testing.B) {
	benchmarkEncode(b, "apparati", FormatCSV)
}

func BenchmarkApparatiJSON(b *testing.B)    { benchmarkEncode(b, "apparati", FormatJSON) }
func BenchmarkApparatiParquet(b *testing.B) { benchmarkEncode(b, "apparati", FormatParquet) }
func BenchmarkProgettiCSV(b *testing.B)     { benchmarkEncode(b, "progetti", FormatCSV) }

func benchmarkEncode(b *testing.B, table, format string) {
	s := bigSnapshot(4800)
	n := 0
	for _, o := range s.Offices {
		n += len(o.Assets)
	}
	if n < 46000 {
		b.Fatalf("%d assets, want 46,000", n)
	}
	v := newView(s)
	sp := specByName(table)
	var size int
	for b.Loop() {
		body, err := encode(sp, v, Filter{}, format, bodyMeta{modified: s.At})
		if err != nil {
			b.Fatal(err)
		}
		size = len(body)
	}
	b.SetBytes(int64(size))
	b.ReportMetric(float64(n), "assets")
}
