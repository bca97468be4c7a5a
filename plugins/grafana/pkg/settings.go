// Package polisds is the backend of the Polis Grafana datasource: time
// series, alert history and annotations, and read-only SQL over the
// platform's ClickHouse tables, milestones, the digital twin's sites and
// assets and template variable values from the platform API, plus resource
// calls for the query editor's pickers (sites, assets, metrics).
package polisds

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/polis-platform/polis/storage"
	"github.com/polis-platform/polis/storage/schema"
)

// PluginID is the id in plugin.json.
const PluginID = "polis-platform-datasource"

// Settings is the datasource's JSON configuration (jsonData).
type Settings struct {
	// ClickHouseAddress is the native-protocol address, host:port
	// (default 127.0.0.1:9000).
	ClickHouseAddress string `json:"clickhouseAddress"`
	// ClickHouseUser logs in (default "default").
	ClickHouseUser string `json:"clickhouseUser,omitempty"`
	// ClickHouseTLS encrypts the connection (secure native port).
	ClickHouseTLS bool `json:"clickhouseTLS,omitempty"`
	// Database holds the platform's tables (default "polis").
	Database string `json:"database"`
	// APIURL is the platform's HTTP API, e.g. http://127.0.0.1:8080;
	// needed by the milestones, twin and variable (regions, provinces,
	// sites of a region) queries and the region ad hoc filter; checked by
	// the health check when set.
	APIURL string `json:"apiUrl,omitempty"`
}

// SecureSettings is the datasource's secure configuration
// (secureJsonData), decrypted by Grafana.
type SecureSettings struct {
	ClickHousePassword string `json:"clickhousePassword"`
	APIToken           string `json:"apiToken"`
}

// Secure setting keys.
const (
	SecureClickHousePassword = "clickhousePassword"
	SecureAPIToken           = "apiToken"
)

// LoadSettings reads and checks a datasource instance's settings.
func LoadSettings(s backend.DataSourceInstanceSettings) (Settings, SecureSettings, error) {
	var cfg Settings
	if len(s.JSONData) > 0 {
		if err := json.Unmarshal(s.JSONData, &cfg); err != nil {
			return cfg, SecureSettings{}, fmt.Errorf("cannot read the datasource settings: %w", err)
		}
	}
	if cfg.ClickHouseAddress == "" {
		cfg.ClickHouseAddress = storage.DefaultAddr
	}
	if cfg.Database == "" {
		cfg.Database = schema.DefaultDatabase
	}
	if err := schema.ValidDatabase(cfg.Database); err != nil {
		return cfg, SecureSettings{}, fmt.Errorf("database: %w", err)
	}
	cfg.APIURL = strings.TrimRight(cfg.APIURL, "/")
	if cfg.APIURL != "" {
		u, err := url.Parse(cfg.APIURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cfg, SecureSettings{}, fmt.Errorf("apiUrl %q: want http(s)://host[:port]", cfg.APIURL)
		}
	}
	sec := SecureSettings{
		ClickHousePassword: s.DecryptedSecureJSONData[SecureClickHousePassword],
		APIToken:           s.DecryptedSecureJSONData[SecureAPIToken],
	}
	return cfg, sec, nil
}
