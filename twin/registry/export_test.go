package registry

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func sitesJSON(t *testing.T, reg *Registry) []byte {
	t.Helper()
	b, err := json.Marshal(reg.Sites())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestExportCSV_RoundTrip(t *testing.T) {
	src, creds, err := Generate(GenerateOptions{Sites: 400, Coworking: 30, Seed: 5, Comuni: loadRealComuni(t)})
	if err != nil {
		t.Fatal(err)
	}
	// Fields the generator leaves empty, so the round trip covers them too.
	first := src.Sites()[0]
	first.CUP, first.CIG, first.ProvinceName = "J51B21005310006", "ZA12B3C4D5", "Nome, con \"virgolette\""
	first.Assets[0].CIG = "8765432ABC"
	first.Labels = map[string]string{"tier": "pilot", "zone": "alps"}
	if err := src.Add(&Site{ID: "PO-001003-1", Kind: KindPostOffice, Comune: "001003"}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := ExportCSV(&out, src); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), ExportHeader+"\n") {
		t.Fatalf("export does not start with ExportHeader")
	}
	dst := New()
	rep, err := ImportCSV(dst, bytes.NewReader(out.Bytes()), ImportOptions{Strict: true})
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if len(rep.Credentials) != 0 {
		t.Fatalf("round trip generated %d secrets; the hashes should have been kept", len(rep.Credentials))
	}
	if a, b := sitesJSON(t, src), sitesJSON(t, dst); !bytes.Equal(a, b) {
		t.Fatalf("round trip changed the registry:\n%.400s\n%.400s", a, b)
	}
	for _, c := range creds[:50] {
		if _, err := dst.Authenticate(c.Username, []byte(c.Password)); err != nil {
			t.Fatalf("%s cannot log in after the round trip: %v", c.Username, err)
		}
	}
	// A second export is byte-identical.
	var again bytes.Buffer
	if err := ExportCSV(&again, dst); err != nil || !bytes.Equal(out.Bytes(), again.Bytes()) {
		t.Fatalf("second export differs: %v", err)
	}
}

func TestExportComuniCSV_RoundTrip(t *testing.T) {
	reg := New()
	if _, err := ImportComuniFiles(reg, sharedData(t, "comuni_mappa_ai_2020.csv"), sharedData(t, "comuni_centroidi_openpolis_2023.csv"), ComuniOptions{}); err != nil {
		t.Fatal(err)
	}
	// Synthetic and coworking sites did not come from the list.
	_ = reg.Add(&Site{ID: "PO-999001-1", Kind: KindPostOffice, Comune: "999001"}, &Site{ID: "CW-TO-1", Kind: KindCoworking, Name: "Torino"})
	var out bytes.Buffer
	if err := ExportComuniCSV(&out, reg); err != nil {
		t.Fatal(err)
	}
	cs, err := readComuni(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatalf("export is not readable as the ISTAT layout: %v", err)
	}
	cents, err := readCentroids(strings.NewReader(strings.Replace(out.String(), "PROCOM_T", "pro_com_t", 1)))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := reg.Len()
	if len(cs) != n-2 {
		t.Fatalf("exported %d comuni; want %d", len(cs), n-2)
	}
	orig := map[string]Comune{}
	for _, c := range loadRealComuni(t) {
		orig[c.Code] = c
	}
	for _, c := range cs {
		o := orig[c.Code]
		o.Lat, o.Lon = 0, 0
		if c != o {
			t.Fatalf("comune %s changed: got %+v; want %+v", c.Code, c, o)
		}
		s, _ := reg.Site("PO-" + c.Code + "-1")
		if cents[c.Code] != (LatLon{s.Lat, s.Lon}) {
			t.Fatalf("comune %s: coordinates changed", c.Code)
		}
	}
}
