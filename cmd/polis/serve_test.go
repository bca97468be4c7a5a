package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// The production settings of `polis serve`, from flags and from POLIS_*
// variables: -check takes them, prints where the API is advertised and how
// Kafka and ClickHouse are reached, never a password, and refuses what
// cannot work.
func TestServeCheck_ProductionSettings(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "registry.json")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"registry", "generate", "--out", reg, "--sites", "2", "--coworking", "1", "--comuni", "",
		"--credentials", filepath.Join(dir, "creds.csv")}, &out); err != nil {
		t.Fatalf("generate: %v\n%s", err, out.String())
	}
	const kafkaPass, chPass, hookKey, mqttPass = "kafka-pw-check-1", "ch-pw-check-2", "hook-key-check-3", "mqtt-pw-check-4"
	t.Setenv("POLIS_KAFKA_SASL_PASSWORD", kafkaPass)
	t.Setenv("POLIS_CLICKHOUSE_PASSWORD", chPass)
	t.Setenv("POLIS_ALERT_WEBHOOK_KEY", hookKey)
	t.Setenv("POLIS_ALERT_MQTT_PASSWORD", mqttPass)
	t.Setenv("POLIS_HTTP_ADVERTISE", "polis-1.internal:8080")

	out.Reset()
	err := run(context.Background(), []string{"serve", "-check", "--registry", reg, "--http-addr", "0.0.0.0:8080",
		"--kafka-brokers", "k1:9093,k2:9093", "--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-sasl-username", "polis", "--kafka-tls",
		"--clickhouse", "ch:9440", "--clickhouse-username", "polis", "--clickhouse-tls",
		"--alert-webhook", "https://hooks.example/T000/B000/secretpath", "--alert-mqtt", "tcp://mqtt:1883", "--alert-mqtt-username", "alerts"}, &out)
	if err != nil {
		t.Fatalf("serve -check: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"kafka                  k1:9093,k2:9093, sasl SCRAM-SHA-512 as polis, tls",
		"clickhouse             ch:9440 as polis over TLS",
		"http api               http://0.0.0.0:8080, advertised as http://polis-1.internal:8080",
		"alert webhook          https://hooks.example/...",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("plan lacks %q:\n%s", want, out.String())
		}
	}
	for _, s := range []string{kafkaPass, chPass, hookKey, mqttPass, "secretpath"} {
		if strings.Contains(out.String(), s) {
			t.Errorf("the plan shows secret %q:\n%s", s, out.String())
		}
	}

	// Every interface without an advertised address; SASL for the
	// embedded cluster; a CA file that is not there; PLAIN in clear.
	t.Setenv("POLIS_HTTP_ADVERTISE", "")
	out.Reset()
	err = run(context.Background(), []string{"serve", "-check", "--registry", reg, "--http-addr", "0.0.0.0:8080",
		"--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-username", "polis",
		"--clickhouse-tls-ca", filepath.Join(dir, "no-ca.pem")}, &out)
	if err == nil {
		t.Fatalf("serve -check accepted a broken production configuration:\n%s", out.String())
	}
	for _, want := range []string{"--http-advertise", "--kafka-brokers", "PLAIN sends the password in clear", "--clickhouse-tls-ca"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
	for _, s := range []string{kafkaPass, chPass} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("the error shows secret %q: %v", s, err)
		}
	}
}
