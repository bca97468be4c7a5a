package chserver

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// AnalystUser is the read-only ClickHouse user for analysts (SQL clients,
// notebooks, Arrow over HTTP).
const AnalystUser = "polis_analyst"

// Analyst configures the read-only user. Its profile sets readonly=1: no
// INSERT, no DDL and no SET at all, so the limits below cannot be raised
// from a session (18.16 has no settings constraints, and readonly=2 would
// let a client SET max_execution_time=0). Its quota counts per hour.
type Analyst struct {
	// PasswordSHA256 is the hex SHA-256 of the password (users.xml
	// password_sha256_hex); the plaintext is never written by chserver.
	PasswordSHA256 string
	// Database is the only database the user may read (besides system,
	// which ClickHouse always allows); default "polis".
	Database string
	// Limits are the profile and quota; zero fields take DefaultAnalystLimits.
	Limits AnalystLimits
}

// AnalystLimits are the analyst profile's limits and hourly quota.
type AnalystLimits struct {
	MaxExecutionTime time.Duration // per query; timeout_overflow_mode=throw
	MaxResultRows    uint64        // per query; result_overflow_mode=throw
	MaxResultBytes   uint64        // per query; result_overflow_mode=throw
	MaxMemoryUsage   uint64        // bytes per query

	QueriesPerHour       uint64
	ErrorsPerHour        uint64
	ResultRowsPerHour    uint64
	ExecutionTimePerHour time.Duration
}

// DefaultAnalystLimits: a minute per query, a million rows or 1 GB of
// result, 4 GB of memory; per hour 2,000 queries, 500 errors, 100 million
// result rows and an hour of summed execution time.
var DefaultAnalystLimits = AnalystLimits{
	MaxExecutionTime: 60 * time.Second,
	MaxResultRows:    1_000_000,
	MaxResultBytes:   1_000_000_000,
	MaxMemoryUsage:   4_000_000_000,

	QueriesPerHour:       2000,
	ErrorsPerHour:        500,
	ResultRowsPerHour:    100_000_000,
	ExecutionTimePerHour: time.Hour,
}

func (l AnalystLimits) withDefaults() AnalystLimits {
	d := DefaultAnalystLimits
	set := func(v *uint64, def uint64) {
		if *v == 0 {
			*v = def
		}
	}
	if l.MaxExecutionTime <= 0 {
		l.MaxExecutionTime = d.MaxExecutionTime
	}
	if l.ExecutionTimePerHour <= 0 {
		l.ExecutionTimePerHour = d.ExecutionTimePerHour
	}
	set(&l.MaxResultRows, d.MaxResultRows)
	set(&l.MaxResultBytes, d.MaxResultBytes)
	set(&l.MaxMemoryUsage, d.MaxMemoryUsage)
	set(&l.QueriesPerHour, d.QueriesPerHour)
	set(&l.ErrorsPerHour, d.ErrorsPerHour)
	set(&l.ResultRowsPerHour, d.ResultRowsPerHour)
	return l
}

func (a *Analyst) validate() error {
	if len(a.PasswordSHA256) != 64 {
		return errors.New("analyst PasswordSHA256 must be 64 hex digits")
	}
	if _, err := hex.DecodeString(a.PasswordSHA256); err != nil {
		return fmt.Errorf("analyst PasswordSHA256: %w", err)
	}
	if a.Database != "" && !validIdent(a.Database) {
		return fmt.Errorf("analyst database %q is not a plain identifier", a.Database)
	}
	return nil
}

func validIdent(s string) bool {
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

func secs(d time.Duration) string { return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10) }
func u(v uint64) string           { return strconv.FormatUint(v, 10) }

// analystXML returns the profile, user and quota elements of users.xml.
func analystXML(a *Analyst) (profile, user, quota string) {
	if a == nil {
		return "", "", ""
	}
	l := a.Limits.withDefaults()
	db := a.Database
	if db == "" {
		db = "polis"
	}
	profile = `
        <` + AnalystUser + `>
            <!-- readonly=1: reads only, and no SET, so these limits hold. -->
            <readonly>1</readonly>
            <max_execution_time>` + secs(l.MaxExecutionTime) + `</max_execution_time>
            <timeout_overflow_mode>throw</timeout_overflow_mode>
            <max_result_rows>` + u(l.MaxResultRows) + `</max_result_rows>
            <max_result_bytes>` + u(l.MaxResultBytes) + `</max_result_bytes>
            <result_overflow_mode>throw</result_overflow_mode>
            <max_memory_usage>` + u(l.MaxMemoryUsage) + `</max_memory_usage>
            <poll_interval>1</poll_interval>
        </` + AnalystUser + `>`
	user = `
        <` + AnalystUser + `>
            <password_sha256_hex>` + strings.ToLower(a.PasswordSHA256) + `</password_sha256_hex>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>` + AnalystUser + `</profile>
            <quota>` + AnalystUser + `</quota>
            <allow_databases>
                <database>` + db + `</database>
            </allow_databases>
        </` + AnalystUser + `>`
	quota = `
        <` + AnalystUser + `>
            <interval>
                <duration>3600</duration>
                <queries>` + u(l.QueriesPerHour) + `</queries>
                <errors>` + u(l.ErrorsPerHour) + `</errors>
                <result_rows>` + u(l.ResultRowsPerHour) + `</result_rows>
                <read_rows>0</read_rows>
                <execution_time>` + secs(l.ExecutionTimePerHour) + `</execution_time>
            </interval>
        </` + AnalystUser + `>`
	return profile, user, quota
}

// AnalystPassword returns the analyst's password kept in path, making a
// random one (written with mode 0600) if the file is missing or empty,
// and its hex SHA-256 for Analyst.PasswordSHA256.
func AnalystPassword(path string) (plain, sha256Hex string, err error) {
	if b, err := os.ReadFile(path); err == nil {
		plain = strings.TrimSpace(string(b))
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", "", fmt.Errorf("cannot read %s: %w", path, err)
	}
	if plain == "" {
		var b [18]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", "", err
		}
		plain = hex.EncodeToString(b[:])
		if err := os.WriteFile(path, []byte(plain+"\n"), 0o600); err != nil {
			return "", "", fmt.Errorf("cannot write %s: %w", path, err)
		}
		if err := os.Chmod(path, 0o600); err != nil {
			return "", "", fmt.Errorf("cannot restrict %s: %w", path, err)
		}
	}
	h := sha256.Sum256([]byte(plain))
	return plain, hex.EncodeToString(h[:]), nil
}
