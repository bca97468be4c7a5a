// Package clustertest runs the platform as production does, on three hosts:
// three `polis serve` processes, each in a network namespace of its own
// with its own address (10.77.0.11-13 on a bridge the test makes), sharing
// one Kafka-protocol cluster and one ClickHouse, with devices publishing
// through all three. It kills one host with SIGKILL, and in a second run
// cuts one off the network, and checks what the platform promises: the
// others take over its partitions and sites, the devices move to them,
// every acknowledged message is in ClickHouse exactly once, and the host
// cut off acknowledges nothing it cannot make durable.
//
// It needs root and iproute2 (`ip netns`); without them, and under
// go test -short, it skips.
package clustertest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/polis-platform/polis/internal/chserver/chtest"
	"github.com/polis-platform/polis/internal/testutil"
)

// envKfake, set to host:port, makes the test binary the shared Kafka-protocol
// cluster instead of running tests: a process of its own, so that killing or
// cutting off a polis host never takes the cluster with it.
const envKfake = "POLIS_CLUSTERTEST_KFAKE"

func TestMain(m *testing.M) {
	if addr := os.Getenv(envKfake); addr != "" {
		os.Exit(runKfake(addr))
	}
	testutil.VerifyNoLeaks(removeBinary{chtest.Runner(m)})
}

// removeBinary removes the polis binary the tests built once they ran.
type removeBinary struct{ m interface{ Run() int } }

func (r removeBinary) Run() int {
	code := r.m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	return code
}

// runKfake serves a one-broker kfake cluster on addr (port 0: any) until
// SIGTERM or its standard input closes, printing "ready HOST:PORT" once it
// listens. Topics are made by the polis instances (kafka.Ensure), as on a
// real cluster.
func runKfake(addr string) int {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		return 2
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		return 2
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ListenFn(func(network, a string) (net.Listener, error) {
			_, ap, err := net.SplitHostPort(a)
			if err != nil {
				return nil, err
			}
			return net.Listen(network, net.JoinHostPort(host, ap))
		}),
		// As the embedded cluster (kafka.StartEmbedded): retention is per
		// topic, and records may be as large as the platform produces.
		kfake.BrokerConfigs(map[string]string{"log.retention.ms": "-1", "log.retention.bytes": "-1", "message.max.bytes": strconv.Itoa(8 << 20)}),
		kfake.ClusterID("polis-clustertest"),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		return 1
	}
	defer c.Close()
	fmt.Println("ready", c.ListenAddrs()[0])
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	eof := make(chan struct{})
	go func() {
		_, _ = bufio.NewReader(os.Stdin).ReadString(0) // until the test goes away
		close(eof)
	}()
	select {
	case <-sig:
	case <-eof:
	}
	return 0
}
