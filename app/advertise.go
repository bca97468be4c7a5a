package app

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// errKafkaConnEmbedded refuses SASL or TLS settings for the embedded
// cluster, which speaks neither: they are meant for a real one.
var errKafkaConnEmbedded = errors.New("--kafka-sasl-* and --kafka-tls-* are for a real cluster: give its --kafka-brokers (the embedded cluster speaks plaintext on loopback)")

// advertisedURL is the URL other instances and clients reach this
// instance's API at: the twin's member id, so the target of every redirect
// to a site's owner.
//
//   - cfg.HTTPAdvertise as a URL (http:// or https://, no path) is taken
//     as it is, for an instance behind a proxy or a load balancer;
//   - cfg.HTTPAdvertise as host:port gets the scheme this instance serves
//     (https with --http-tls-cert);
//   - without it, the address the API is bound to (bound, which carries
//     the port chosen for port 0), provided cfg.HTTPAddr names a host: an
//     unspecified one (0.0.0.0, [::], empty) is refused, since
//     http://[::]:8080 reaches no other machine and a guess (the host
//     name) may resolve nowhere either.
func advertisedURL(cfg Config, bound string) (string, error) {
	scheme := "http"
	if cfg.HTTPTLSCert != "" {
		scheme = "https"
	}
	if a := strings.TrimSpace(cfg.HTTPAdvertise); a != "" {
		if strings.Contains(a, "://") {
			u, err := url.Parse(a)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" ||
				u.RawQuery != "" || u.User != nil {
				return "", fmt.Errorf("--http-advertise %q: want host:port or a URL such as https://polis-1.example:8443 (no path, query or user)", a)
			}
			return u.Scheme + "://" + u.Host, nil
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return "", fmt.Errorf("--http-advertise %q: want host:port, such as polis-1.internal:8080", a)
		}
		if unspecified(host) {
			return "", fmt.Errorf("--http-advertise %q: name a host the other instances reach, not an unspecified address", a)
		}
		return scheme + "://" + a, nil
	}
	host, _, err := net.SplitHostPort(cfg.HTTPAddr)
	if err != nil {
		return "", fmt.Errorf("--http-addr %q: %w", cfg.HTTPAddr, err)
	}
	if unspecified(host) {
		return "", fmt.Errorf("--http-addr %s listens on every interface, so it names no address to redirect to: "+
			"give --http-advertise (POLIS_HTTP_ADVERTISE) host:port, the address other instances and clients reach this one at", cfg.HTTPAddr)
	}
	return scheme + "://" + bound, nil
}

// unspecified reports whether host is empty, 0.0.0.0 or :: (every
// interface).
func unspecified(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsUnspecified()
}
