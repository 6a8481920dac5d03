// dialer: a small Go client for t_go.sh, built with Debian's golang-go (cgo,
// external link), so that it resolves through glibc's getaddrinfo when
// GODEBUG=netdns=cgo and connects with Go's own system calls.
//
//	dialer get HOST PORT N     N requests for /who over HTTP/1.0, each on a
//	                           new connection; prints each body or "error: ..."
//	dialer lookups HOST N      N lookups of HOST, once the last address of
//	                           six in a row has been the same (at most 15 s):
//	                           prints each answer, addresses space-separated
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

func get(host, port string) string {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), 10*time.Second)
	if err != nil {
		return "error: " + err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /who HTTP/1.0\r\nHost: %s\r\n\r\n", host)
	body, err := io.ReadAll(bufio.NewReader(c))
	if err != nil {
		return "error: " + err.Error()
	}
	parts := strings.SplitN(string(body), "\r\n\r\n", 2)
	if len(parts) != 2 {
		return "error: no body"
	}
	return strings.TrimSpace(parts[1])
}

func lookups(host string, n int) int {
	last, same := "", 0
	for end := time.Now().Add(15 * time.Second); same < 6; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			fmt.Println("error: the last address never settled")
			return 1
		}
		a, err := net.LookupHost(host)
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		if a[len(a)-1] == last {
			same++
		} else {
			last, same = a[len(a)-1], 1
		}
	}
	for i := 0; i < n; i++ {
		a, err := net.LookupHost(host)
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Println(strings.Join(a, " "))
	}
	return 0
}

func main() {
	if len(os.Args) == 5 && os.Args[1] == "get" {
		n, _ := strconv.Atoi(os.Args[4])
		for i := 0; i < n; i++ {
			fmt.Println(get(os.Args[2], os.Args[3]))
		}
		return
	}
	if len(os.Args) == 4 && os.Args[1] == "lookups" {
		n, _ := strconv.Atoi(os.Args[3])
		os.Exit(lookups(os.Args[2], n))
	}
	fmt.Fprintln(os.Stderr, "usage: dialer get HOST PORT N | dialer lookups HOST N")
	os.Exit(2)
}
