// Package ssh makes Lapse an OpenSSH user certificate authority: each
// grant on an ssh resource becomes a certificate that sshd accepts until
// the grant's expiry, for the principals of the grant's role, and that
// revocation puts into a key revocation list (KRL).
//
// # Servers
//
// sshd trusts the CA and reads the KRL:
//
//	TrustedUserCAKeys /etc/ssh/lapse_ca.pub        # [Connector.CAPublicKey]
//	RevokedKeys /etc/ssh/lapse.krl                 # [Connector.KRL] or [Config.KRLPath]
//	AuthorizedPrincipalsFile /etc/ssh/principals/%u   # optional: which principals each login accepts
//
// Without AuthorizedPrincipalsFile, sshd accepts a certificate for a login
// whose name is among the certificate's principals. sshd reads RevokedKeys
// at every login, so rewriting the file takes effect at once; if the file
// is missing, sshd refuses every key.
//
// # Roles
//
// A role's settings ([RoleSettings], decoded by [Connector.DecodeRole]):
//
//	roles:
//	  - name: deploy
//	    principals: [deploy]                  # required
//	    extensions: [permit-pty]              # optional; none by default
//	    source_address: [10.0.0.0/8]          # optional; the source-address critical option
//
// Without extensions a certificate allows commands without a terminal and
// nothing else: no pty, no port, agent or X11 forwarding, no ~/.ssh/rc.
// The known extensions are listed by [KnownExtensions].
//
// # Certificates
//
// [Connector.Provision] signs the public key in the grant's ssh_public_key
// input ([InputPublicKey]), one line in authorized_keys format. Without it,
// it generates an Ed25519 key pair and hands the private key over, once,
// with the certificate ([KindKeyAndCertificate]; [SplitCredentials]
// separates the two). The certificate is valid from now minus
// [Config.Skew] until the grant's expiry, has the key id
// lapse:<user>:<grant id> ([KeyID]), which sshd logs, and the serial
// [Serial] of the grant id, which is also the grant's Ref. Signing again
// for the same grant, by a retried Provision or by [Connector.Extend],
// gives the same serial, so one revocation covers every certificate the
// grant ever had.
//
// # Revocation
//
// [Connector.Revoke] adds the serial to the revocation list, kept in
// [Config.StateDir] and written atomically, with the certificate's expiry:
// a serial leaves the list [PruneGrace] after its certificate expired,
// so the KRL stays as small as the certificates still valid. [Connector.KRL]
// encodes the list in OpenSSH's KRL format (PROTOCOL.krl: one certificate
// section for the CA with a sorted serial list); [Connector.WriteKRL] and
// [Config.KRLPath] write it to a file for sshd. sshd checks the KRL when a
// session starts; sessions already open continue.
//
// [Connector.List] returns nothing: certificates cannot be enumerated in
// a target.
package ssh
