package storage

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ConnOptions are how the platform logs in to ClickHouse and whether its
// connection is encrypted (the --clickhouse-* flags of `polis serve`). The
// zero value is the passwordless user "default" in plaintext, as a local
// server has it.
type ConnOptions struct {
	// Addr is the native-protocol address, host:port (DefaultAddr).
	Addr string
	// User and Password log in; an empty User is "default".
	User     string
	Password string
	// TLS encrypts the connection (ClickHouse's secure native port, 9440
	// by default); so does either field below.
	TLS bool
	// TLSCAFile is a PEM bundle of the CAs that sign the server's
	// certificate; empty: the system's.
	TLSCAFile string
	// TLSServerName is the name the server's certificate is checked
	// against; empty: the host of Addr.
	TLSServerName string
}

// TLSEnabled reports whether o asks for TLS.
func (o ConnOptions) TLSEnabled() bool { return o.TLS || o.TLSCAFile != "" || o.TLSServerName != "" }

// String says where and how o connects, without the password.
func (o ConnOptions) String() string {
	s := o.Addr
	if o.User != "" {
		s += " as " + o.User
	}
	if o.TLSEnabled() {
		s += " over TLS"
	}
	return s
}

// Options are the clickhouse-go options of o for the native protocol;
// the caller adds its timeouts and pool sizes. Files are read here: an
// error names the flag.
func (o ConnOptions) Options() (*clickhouse.Options, error) {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.Password != "" && o.User == "" {
		o.User = "default"
	}
	co := &clickhouse.Options{Addr: []string{o.Addr}, Protocol: clickhouse.Native,
		Auth: clickhouse.Auth{Username: o.User, Password: o.Password}}
	if o.TLSEnabled() {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.TLSServerName}
		if o.TLSCAFile != "" {
			pem, err := os.ReadFile(o.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("--clickhouse-tls-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--clickhouse-tls-ca: %s holds no PEM certificate", o.TLSCAFile)
			}
			cfg.RootCAs = pool
		}
		co.TLS = cfg
	}
	return co, nil
}

// Open opens a native connection as o says, with tune (if not nil)
// adjusting the options first (timeouts, pool sizes). The driver dials
// lazily: the first query reports a wrong password or certificate.
func Open(o ConnOptions, tune func(*clickhouse.Options)) (driver.Conn, error) {
	co, err := o.Options()
	if err != nil {
		return nil, err
	}
	if tune != nil {
		tune(co)
	}
	if co.DialTimeout == 0 {
		co.DialTimeout = 5 * time.Second
	}
	conn, err := clickhouse.Open(co)
	if err != nil {
		return nil, fmt.Errorf("cannot open ClickHouse %s: %w", o, err)
	}
	return conn, nil
}
