// Package sshdtest starts throwaway OpenSSH servers for tests.
//
// [Start] runs sshd on a free loopback TCP port with a fresh host key,
// trusting the given user CA keys (TrustedUserCAKeys), accepting for the
// current user only the principals listed in an AuthorizedPrincipalsFile,
// and reading a key revocation list (RevokedKeys) that the test rewrites
// with [Server.WriteKRL]. Password and keyboard-interactive logins are off
// and authorized_keys files are ignored, so only certificates log in. The
// server and its directory are removed when the test ends.
//
//	srv := sshdtest.Start(t, sshdtest.Options{CAKeys: ca, Principals: []string{"deploy"}})
//	out, err := srv.Run(ctx, signer, "echo ok")
//
// sshd is looked up as /usr/sbin/sshd and then on PATH. When it is missing
// the test is skipped with the command that installs it, or fails if the
// environment variable CI is set. sshd runs as the current user: as root
// it separates privileges as usual (and needs /run/sshd, which Start
// creates), as another user it can only log that user in.
package sshdtest
