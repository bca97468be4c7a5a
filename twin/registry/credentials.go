package registry

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// credentialsHeader is the header of var/credentials.csv (docs/design.md).
var credentialsHeader = []string{"site", "asset", "username", "password"}

// WriteCredentialsCSV writes creds as var/credentials.csv: a header
// "site,asset,username,password" and one row per device.
func WriteCredentialsCSV(w io.Writer, creds []Credential) error {
	return writeCredentials(w, creds, true)
}

func writeCredentials(w io.Writer, creds []Credential, header bool) error {
	cw := csv.NewWriter(w)
	if header {
		if err := cw.Write(credentialsHeader); err != nil {
			return fmt.Errorf("cannot write credentials: %w", err)
		}
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

// AppendCredentialsFile adds creds to the credentials file at path, for
// `polis registry import --credentials`. A missing file is created with
// mode 0600; the header is written only when the file is new or empty.
// Existing lines are never rewritten: the file is opened O_APPEND and the
// new rows go in one write.
//
// Nothing is written, and an error returned, when the file is not a
// credentials file (ReadCredentialsCSV refuses it: another CSV given by
// mistake) or already lists one of the usernames of creds, which would
// leave two secrets for one device in the file.
func AppendCredentialsFile(path string, creds []Credential) (err error) {
	if len(creds) == 0 {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("cannot append credentials: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("cannot append credentials to %s: %w", path, cerr)
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("cannot append credentials: %w", err)
	}
	var buf bytes.Buffer
	if st.Size() == 0 {
		if err := writeCredentials(&buf, creds, true); err != nil {
			return err
		}
	} else {
		old, err := ReadCredentialsCSV(io.NewSectionReader(f, 0, st.Size()))
		if err != nil {
			return fmt.Errorf("cannot append credentials to %s, which is not a credentials file (%s): %w",
				path, strings.Join(credentialsHeader, ","), err)
		}
		listed := make(map[string]bool, len(old))
		for _, c := range old {
			listed[c.Username] = true
		}
		for _, c := range creds {
			if listed[c.Username] {
				return fmt.Errorf("cannot append credentials to %s: it already lists %s, whose new secret would be a second line; give another file",
					path, c.Username)
			}
		}
		var last [1]byte
		if _, err := f.ReadAt(last[:], st.Size()-1); err != nil {
			return fmt.Errorf("cannot append credentials: %w", err)
		}
		if last[0] != '\n' {
			buf.WriteByte('\n') // end the last line before adding ours
		}
		if err := writeCredentials(&buf, creds, false); err != nil {
			return err
		}
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("cannot append credentials to %s: %w", path, err)
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
