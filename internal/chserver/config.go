package chserver

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// The layout of Dir. Everything the server writes stays under it.
const (
	configFile     = "config.xml"
	usersFile      = "users.xml"
	dataDir        = "data"
	tmpDir         = "tmp"
	userFilesDir   = "user_files"
	formatSchemas  = "format_schemas"
	logDir         = "log"
	serverLog      = "clickhouse-server.log"
	serverErrorLog = "clickhouse-server.err.log"
	stdoutLog      = "stdout.log"
)

// xmlText escapes s for an XML text node (paths may hold '&' or '<').
func xmlText(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// writeConfig writes config.xml and users.xml into dir. The config is the
// minimal one 18.16 accepts; newer servers accept it too (unknown or missing
// keys fall back to their defaults).
func writeConfig(dir string, tcpPort, httpPort int, analyst *Analyst) error {
	aProfile, aUser, aQuota := analystXML(analyst)
	for _, d := range []string{dataDir, tmpDir, userFilesDir, formatSchemas, logDir} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("cannot create %s: %w", d, err)
		}
	}
	p := func(name string) string { return xmlText(filepath.Join(dir, name) + "/") }
	f := func(name string) string { return xmlText(filepath.Join(dir, name)) }
	config := `<?xml version="1.0"?>
<!-- Written by polis internal/chserver; rewritten on every start. -->
<yandex>
    <logger>
        <level>warning</level>
        <log>` + f(filepath.Join(logDir, serverLog)) + `</log>
        <errorlog>` + f(filepath.Join(logDir, serverErrorLog)) + `</errorlog>
        <size>10M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>` + strconv.Itoa(tcpPort) + `</tcp_port>
    <http_port>` + strconv.Itoa(httpPort) + `</http_port>
    <path>` + p(dataDir) + `</path>
    <tmp_path>` + p(tmpDir) + `</tmp_path>
    <user_files_path>` + p(userFilesDir) + `</user_files_path>
    <format_schema_path>` + p(formatSchemas) + `</format_schema_path>
    <users_config>` + f(usersFile) + `</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>268435456</mark_cache_size>
    <max_concurrent_queries>100</max_concurrent_queries>
</yandex>
`
	users := `<?xml version="1.0"?>
<!-- Written by polis internal/chserver: a passwordless default user and, if
     configured, the read-only polis_analyst; loopback only. -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <!-- Idle native connections notice a shutdown only at each poll
                 (default 10 s); 1 s keeps Stop and Restart quick. -->
            <poll_interval>1</poll_interval>
        </default>` + aProfile + `
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>` + aUser + `
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>` + aQuota + `
    </quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(dir, configFile), []byte(config), 0o644); err != nil {
		return fmt.Errorf("cannot write %s: %w", configFile, err)
	}
	// 0600: the analyst's password hash is in it.
	if err := os.WriteFile(filepath.Join(dir, usersFile), []byte(users), 0o600); err != nil {
		return fmt.Errorf("cannot write %s: %w", usersFile, err)
	}
	return os.Chmod(filepath.Join(dir, usersFile), 0o600)
}
