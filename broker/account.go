package broker

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/polis-platform/polis/credential"
)

// Account is a service account (an integration, a bridge, a test harness)
// with its own secret and the topic filters it may publish and subscribe to.
type Account struct {
	Username   string   `yaml:"username"`
	SecretHash string   `yaml:"secret_hash"` // sha256$salt$hash (polis registry hash) or bcrypt
	Publish    []string `yaml:"publish"`
	Subscribe  []string `yaml:"subscribe"`
}

func (a *Account) validate() error {
	switch {
	case a.Username == "":
		return errors.New("username is empty")
	case strings.Contains(a.Username, "/"):
		return fmt.Errorf("username %q has a '/', which is reserved for devices (SITE/ASSET)", a.Username)
	case a.SecretHash == "":
		return fmt.Errorf("account %q has no secret_hash (make one with 'polis registry hash')", a.Username)
	}
	for _, f := range append(append([]string{}, a.Publish...), a.Subscribe...) {
		if !mqttFilterValid(f) {
			return fmt.Errorf("account %q: %q is not a valid MQTT topic filter", a.Username, f)
		}
	}
	return nil
}

func (a *Account) check(secret []byte) bool { return credential.Check(a.SecretHash, secret) }

func mqttFilterValid(f string) bool {
	if f == "" {
		return false
	}
	parts := strings.Split(f, "/")
	for i, p := range parts {
		if strings.Contains(p, "#") && (p != "#" || i != len(parts)-1) {
			return false
		}
		if strings.Contains(p, "+") && p != "+" {
			return false
		}
	}
	return true
}

type accountsFile struct {
	Accounts []Account `yaml:"accounts"`
}

// LoadAccounts reads service accounts from a YAML file; unknown keys are errors.
func LoadAccounts(path string) ([]Account, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read accounts: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	var af accountsFile
	if err := dec.Decode(&af); err != nil {
		return nil, fmt.Errorf("cannot parse accounts file %s: %w", path, err)
	}
	for i := range af.Accounts {
		if err := af.Accounts[i].validate(); err != nil {
			return nil, fmt.Errorf("%s: account %d: %w", path, i+1, err)
		}
	}
	return af.Accounts, nil
}
