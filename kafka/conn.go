package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// The SASL mechanisms a ConnConfig may name.
const (
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
	// SASLPlain sends the password itself: it is accepted only over TLS.
	SASLPlain = "PLAIN"
)

// ClientOptions are how every Kafka client of the platform connects, beside
// its seed brokers: authentication and encryption. The zero value is a
// plaintext connection without authentication (the embedded cluster, the
// tests). app threads one value into every component that makes a client,
// which makes it with ClientOptions.NewClient, so no client of any
// component connects differently from the others.
//
// A ClientOptions never prints its password: String and LogValue leave it
// out, so it may be logged.
type ClientOptions struct {
	// SASL authenticates every connection; nil: none.
	SASL sasl.Mechanism
	// SASLUser is the SASL user, for logs only.
	SASLUser string
	// TLS encrypts every connection; nil: plaintext. An empty ServerName is
	// each broker's host (kgo.DialTLSConfig).
	TLS *tls.Config
	// SessionTimeout is how long a consumer group member may go without a
	// heartbeat before the group gives its partitions to the others: the
	// takeover time of a crashed or cut-off instance. Zero: franz-go's
	// default (45 s). Its heartbeat interval is a third of it, at most
	// franz-go's 3 s. Clients in no group ignore it.
	SessionTimeout time.Duration
	// FetchWait, if positive, makes a consumer's fetch wait up to this
	// long for fetchBatchBytes of records before the broker answers:
	// at low rates, one fetch per FetchWait instead of one per few
	// records. Zero: franz-go's default (answer at the first byte).
	FetchWait time.Duration
}

// fetchBatchBytes is what a fetch with ClientOptions.FetchWait waits for.
const fetchBatchBytes = 1 << 20

// maxHeartbeat is franz-go's default heartbeat interval.
const maxHeartbeat = 3 * time.Second

// HeartbeatInterval is the heartbeat interval of a session timeout: a
// third of it (Kafka's advice, so a member misses two before it is
// dropped), at most franz-go's default 3 s.
func HeartbeatInterval(session time.Duration) time.Duration {
	return min(session/3, maxHeartbeat)
}

// Opts are the client options that make a client connect as o says.
func (o ClientOptions) Opts() []kgo.Opt {
	var opts []kgo.Opt
	if o.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(o.TLS))
	}
	if o.SASL != nil {
		opts = append(opts, kgo.SASL(o.SASL))
	}
	if o.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(o.SessionTimeout), kgo.HeartbeatInterval(HeartbeatInterval(o.SessionTimeout)))
	}
	if o.FetchWait > 0 {
		opts = append(opts, kgo.FetchMaxWait(o.FetchWait), kgo.FetchMinBytes(fetchBatchBytes))
	}
	return opts
}

// NewClient is the package's NewClient with o's connection options first
// (opts may still override them).
func (o ClientOptions) NewClient(brokers []string, log *slog.Logger, opts ...kgo.Opt) (*kgo.Client, error) {
	return NewClient(brokers, log, append(o.Opts(), opts...)...)
}

// String says how o connects, without the password.
func (o ClientOptions) String() string {
	var parts []string
	if o.SASL != nil {
		parts = append(parts, "sasl "+o.SASL.Name()+" as "+o.SASLUser)
	}
	if o.TLS != nil {
		s := "tls"
		if o.TLS.ServerName != "" {
			s += " (server name " + o.TLS.ServerName + ")"
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "plaintext"
	}
	return strings.Join(parts, ", ")
}

// LogValue is String, so a logged ClientOptions shows no secret.
func (o ClientOptions) LogValue() slog.Value { return slog.StringValue(o.String()) }

// ConnConfig is ClientOptions as an operator writes them (the flags of
// `polis serve` and `polis kafka init`): Load reads the files and makes the
// mechanism.
type ConnConfig struct {
	// SASLMechanism is SASLScramSHA256, SASLScramSHA512, SASLPlain (TLS
	// only), or empty for no authentication.
	SASLMechanism string
	SASLUser      string
	SASLPassword  string
	// TLS turns TLS on; so does any of the fields below.
	TLS bool
	// TLSCAFile is a PEM bundle of the CAs that sign the brokers'
	// certificates; empty: the system's.
	TLSCAFile string
	// TLSCertFile and TLSKeyFile are a PEM client certificate and key, for
	// brokers that authenticate clients by certificate (mutual TLS).
	TLSCertFile, TLSKeyFile string
	// TLSServerName is the name the brokers' certificates are checked
	// against; empty: each broker's host.
	TLSServerName string
}

// TLSEnabled reports whether c asks for TLS.
func (c ConnConfig) TLSEnabled() bool {
	return c.TLS || c.TLSCAFile != "" || c.TLSCertFile != "" || c.TLSKeyFile != "" || c.TLSServerName != ""
}

// Enabled reports whether c asks for anything beyond plaintext without
// authentication.
func (c ConnConfig) Enabled() bool { return c.SASLMechanism != "" || c.TLSEnabled() }

// Validate checks c without reading a file. Its errors name the flags of
// `polis serve` (--kafka-sasl-*, --kafka-tls-*) and never a password.
func (c ConnConfig) Validate() error {
	var errs []error
	switch strings.ToUpper(c.SASLMechanism) {
	case "":
		if c.SASLUser != "" || c.SASLPassword != "" {
			errs = append(errs, errors.New("--kafka-sasl-username/--kafka-sasl-password given without --kafka-sasl-mechanism (SCRAM-SHA-256 or SCRAM-SHA-512)"))
		}
	case SASLScramSHA256, SASLScramSHA512, SASLPlain:
		if c.SASLUser == "" || c.SASLPassword == "" {
			errs = append(errs, fmt.Errorf("--kafka-sasl-mechanism %s needs --kafka-sasl-username and --kafka-sasl-password", c.SASLMechanism))
		}
		if strings.EqualFold(c.SASLMechanism, SASLPlain) && !c.TLSEnabled() {
			errs = append(errs, errors.New("--kafka-sasl-mechanism PLAIN sends the password in clear: it needs --kafka-tls (or use SCRAM-SHA-512)"))
		}
	default:
		errs = append(errs, fmt.Errorf("--kafka-sasl-mechanism %q: want SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN", c.SASLMechanism))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("--kafka-tls-cert and --kafka-tls-key go together"))
	}
	return errors.Join(errs...)
}

// Load validates c, reads its files and returns the options every client
// is made with.
func (c ConnConfig) Load() (ClientOptions, error) {
	if err := c.Validate(); err != nil {
		return ClientOptions{}, err
	}
	var o ClientOptions
	switch strings.ToUpper(c.SASLMechanism) {
	case SASLScramSHA256:
		o.SASL = scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsSha256Mechanism()
	case SASLScramSHA512:
		o.SASL = scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsSha512Mechanism()
	case SASLPlain:
		o.SASL = plain.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsMechanism()
	}
	o.SASLUser = c.SASLUser
	if c.TLSEnabled() {
		cfg, err := LoadTLS(c.TLSCAFile, c.TLSCertFile, c.TLSKeyFile, c.TLSServerName)
		if err != nil {
			return ClientOptions{}, fmt.Errorf("--kafka-tls-*: %w", err)
		}
		o.TLS = cfg
	}
	return o, nil
}

// LoadTLS makes a client TLS configuration (TLS 1.2 or later) trusting the
// CAs of caFile (empty: the system's), presenting the certificate of
// certFile and keyFile if given, and checking the server's certificate
// against serverName (empty: the host dialled).
func LoadTLS(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("cannot load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Ping connects to the cluster with o and asks for its metadata, so that
// a wrong password or certificate is reported at once, not as a client
// retrying in the background.
func (o ClientOptions) Ping(ctx context.Context, brokers []string, log *slog.Logger) error {
	cl, err := o.NewClient(brokers, log)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.Ping(ctx); err != nil {
		return fmt.Errorf("cannot reach Kafka at %s (%s): %w", strings.Join(brokers, ","), o, err)
	}
	return nil
}
