package clustertest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/internal/testutil"
)

// The test's network: a bridge in the root namespace with 10.77.0.1, where
// the shared Kafka, the ClickHouse proxy and the devices are, and a network
// namespace per polis host, each joined to the bridge by a veth pair and
// holding one address, 10.77.0.1N. A host is cut off by taking its veth's
// bridge end down.
const (
	bridgeName = "polisct0"
	bridgeIP   = "10.77.0.1"
	nsPrefix   = "polisct"
	hosts      = 3
)

// hostNet is the network made for one test.
type hostNet struct {
	t   *testing.T
	ips []string // of each host, in its namespace
}

func nsName(i int) string   { return fmt.Sprintf("%s%d", nsPrefix, i+1) }
func vethHost(i int) string { return fmt.Sprintf("%s%dh", nsPrefix, i+1) } // the bridge's end, in the root namespace
func vethNS(i int) string   { return fmt.Sprintf("%s%dn", nsPrefix, i+1) } // the host's end, in its namespace
func hostIP(i int) string   { return fmt.Sprintf("10.77.0.%d", 11+i) }

// ip runs iproute2, failing the test with its output.
func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// ipQuiet runs iproute2 for a cleanup, where a missing link is no fault.
func ipQuiet(args ...string) { _ = exec.Command("ip", args...).Run() }

// newHostNet makes the bridge and the namespaces, and removes them when the
// test ends, whatever happened. It skips when it cannot: not root, or no
// iproute2.
func newHostNet(t *testing.T) *hostNet {
	t.Helper()
	if testing.Short() {
		t.Skip("starts three polis hosts, Kafka and ClickHouse")
	}
	testutil.Need(t, os.Geteuid() == 0, "needs root to make network namespaces (ip netns); run the tests as root")
	_, err := exec.LookPath("ip")
	testutil.Need(t, err == nil, "needs iproute2's ip (Debian: apt-get install iproute2)")
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	testutil.Need(t, err == nil, "ip netns does not work here: %v %s", err, out)
	removeHostNet() // a run killed before its cleanup
	t.Cleanup(removeHostNet)
	// Should the bridge go before a client stops, 10.77.0.0/24 must not
	// fall back to the default route and leave the machine.
	ip(t, "route", "add", "unreachable", "10.77.0.0/16")
	ip(t, "link", "add", bridgeName, "type", "bridge")
	ip(t, "addr", "add", bridgeIP+"/24", "dev", bridgeName)
	ip(t, "link", "set", bridgeName, "up")
	n := &hostNet{t: t}
	for i := range hosts {
		ns := nsName(i)
		ip(t, "netns", "add", ns)
		ip(t, "link", "add", vethHost(i), "type", "veth", "peer", "name", vethNS(i))
		ip(t, "link", "set", vethNS(i), "netns", ns)
		ip(t, "link", "set", vethHost(i), "master", bridgeName)
		ip(t, "link", "set", vethHost(i), "up")
		ip(t, "-n", ns, "addr", "add", hostIP(i)+"/24", "dev", vethNS(i))
		ip(t, "-n", ns, "link", "set", vethNS(i), "up")
		ip(t, "-n", ns, "link", "set", "lo", "up")
		n.ips = append(n.ips, hostIP(i))
	}
	n.checkReach()
	return n
}

// removeHostNet deletes what newHostNet made (the veths go with their
// namespaces), then the fallback route.
func removeHostNet() {
	for i := range hosts {
		ipQuiet("netns", "del", nsName(i))
		ipQuiet("link", "del", vethHost(i))
	}
	ipQuiet("link", "del", bridgeName)
	ipQuiet("route", "del", "unreachable", "10.77.0.0/16")
}

// checkReach connects from every namespace to a listener on the bridge
// address: the network works before anything runs on it.
func (n *hostNet) checkReach() {
	t := n.t
	ln, err := net.Listen("tcp", net.JoinHostPort(bridgeIP, "0"))
	if err != nil {
		t.Fatalf("cannot listen on the bridge address %s: %v", bridgeIP, err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	for i := range hosts {
		// bash's /dev/tcp: no other tool needed in the namespace.
		cmd := exec.Command("ip", "netns", "exec", nsName(i), "timeout", "5", "bash", "-c", "exec 3<>/dev/tcp/"+bridgeIP+"/"+port)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("host %d (%s) cannot reach %s:%s: %v\n%s", i+1, nsName(i), bridgeIP, port, err, out)
		}
	}
}

// cut takes host i off the network: its veth's bridge end goes down, so
// nothing from or to it passes (no reset: packets are lost, as in a
// partition). The host keeps running and reaches its own address.
func (n *hostNet) cut(i int) { ip(n.t, "link", "set", vethHost(i), "down") }

// heal puts host i back.
func (n *hostNet) heal(i int) { ip(n.t, "link", "set", vethHost(i), "up") }

// execIn runs a command in host i's namespace, bounded by timeout.
func execIn(i int, timeout time.Duration, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", nsName(i), "timeout", "-s", "KILL",
		fmt.Sprint(int(timeout.Seconds())), name}, args...)...)
}
