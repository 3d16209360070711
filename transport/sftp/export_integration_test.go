//go:build integration

package sftp

// UsePlainRename makes tr's open connections rename as if the server did
// not offer posix-rename@openssh.com, so that the tests can reach the
// plain rename path against OpenSSH, which offers it.
func UsePlainRename(tr *Transport) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, c := range tr.conns {
		c.posixRename = false
	}
}
