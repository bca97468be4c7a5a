package registry

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// credentialsHeader is the header of var/credentials.csv (docs/design.md).
var credentialsHeader = []string{"site", "asset", "username", "password"}

// WriteCredentialsCSV writes creds as var/credentials.csv: a header
// "site,asset,username,password" and one row per device.
func WriteCredentialsCSV(w io.Writer, creds []Credential) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(credentialsHeader); err != nil {
		return fmt.Errorf("cannot write credentials: %w", err)
	}
	for _, c := range creds {
		if err := cw.Write([]string{c.Site, c.Asset, c.Username, c.Password}); err != nil {
			return fmt.Errorf("cannot write credentials: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("cannot write credentials: %w", err)
	}
	return nil
}

// ReadCredentialsCSV reads a file written by WriteCredentialsCSV. It checks the
// header, the ids and that each username is SITE/ASSET, naming the bad line.
func ReadCredentialsCSV(r io.Reader) ([]Credential, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(credentialsHeader)
	header, err := cr.Read()
	if err == io.EOF {
		return nil, errors.New("cannot read credentials: empty file, header expected")
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read credentials: %w", err)
	}
	if got := strings.Join(header, ","); strings.TrimPrefix(got, "\ufeff") != strings.Join(credentialsHeader, ",") {
		return nil, fmt.Errorf("cannot read credentials: line 1: header %q, want %q", got, strings.Join(credentialsHeader, ","))
	}
	var out []Credential
	seen := map[string]int{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("cannot read credentials: %w", err)
		}
		line, _ := cr.FieldPos(0)
		c := Credential{Site: rec[0], Asset: rec[1], Username: rec[2], Password: rec[3]}
		switch {
		case !ValidSiteID(c.Site):
			err = fmt.Errorf("site %q is not a valid site id", c.Site)
		case !ValidAssetID(c.Asset):
			err = fmt.Errorf("asset %q is not a valid asset id", c.Asset)
		case c.Username != Username(c.Site, c.Asset):
			err = fmt.Errorf("username %q, want %q", c.Username, Username(c.Site, c.Asset))
		case c.Password == "":
			err = errors.New("empty password")
		case seen[c.Username] != 0:
			err = fmt.Errorf("%s already listed on line %d", c.Username, seen[c.Username])
		}
		if err != nil {
			return nil, fmt.Errorf("cannot read credentials: line %d: %w", line, err)
		}
		seen[c.Username] = line
		out = append(out, c)
	}
	return out, nil
}
