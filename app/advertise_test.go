package app

import (
	"strings"
	"testing"
)

func TestAdvertisedURL(t *testing.T) {
	tests := []struct {
		name                     string
		addr, advertise, tlsCert string
		bound                    string
		want                     string // empty: an error containing wantErr
		wantErr                  string
	}{
		{"loopback as bound", "127.0.0.1:0", "", "", "127.0.0.1:41234", "http://127.0.0.1:41234", ""},
		{"named host", "polis-1.internal:8080", "", "", "10.0.0.5:8080", "http://10.0.0.5:8080", ""},
		{"every interface refused", "0.0.0.0:8080", "", "", "[::]:8080", "", "--http-advertise"},
		{"every interface v6 refused", "[::]:8080", "", "", "[::]:8080", "", "listens on every interface"},
		{"empty host refused", ":8080", "", "", "[::]:8080", "", "--http-advertise"},
		{"advertise host:port", "0.0.0.0:8080", "polis-1.internal:8080", "", "[::]:8080", "http://polis-1.internal:8080", ""},
		{"advertise with https", "0.0.0.0:8443", "polis-1.internal:8443", "cert.pem", "[::]:8443", "https://polis-1.internal:8443", ""},
		{"advertise URL behind a proxy", "0.0.0.0:8080", "https://polis.example/", "", "[::]:8080", "https://polis.example", ""},
		{"advertise URL with path", "0.0.0.0:8080", "https://polis.example/api", "", "", "", "no path"},
		{"advertise URL with user", "0.0.0.0:8080", "https://u:p@polis.example", "", "", "", "no path"},
		{"advertise ftp", "0.0.0.0:8080", "ftp://polis.example", "", "", "", "want host:port or a URL"},
		{"advertise without port", "0.0.0.0:8080", "polis.example", "", "", "", "want host:port"},
		{"advertise unspecified", "0.0.0.0:8080", "0.0.0.0:8080", "", "", "", "not an unspecified address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{HTTPAddr: tt.addr, HTTPAdvertise: tt.advertise, HTTPTLSCert: tt.tlsCert}
			got, err := advertisedURL(cfg, tt.bound)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("advertisedURL = %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("advertisedURL = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
