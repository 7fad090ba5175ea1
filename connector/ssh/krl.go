package ssh

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The KRL format, from OpenSSH's PROTOCOL.krl.
const (
	krlMagic         = 0x5353484b524c0a00 // "SSHKRL\n\0"
	krlFormatVersion = 1

	krlSectionCertificates = 1
	krlCertSerialList      = 0x20
)

// encodeKRL returns an OpenSSH key revocation list that revokes the
// certificates with the given serials, sorted and without duplicates,
// signed by the CA whose public key blob is caBlob. With no serials it
// has no sections and revokes nothing.
func encodeKRL(caBlob []byte, version uint64, generated time.Time, comment string, serials []uint64) []byte {
	size := 8 + 4 + 8 + 8 + 8 + 4 + 4 + len(comment)
	if len(serials) > 0 {
		size += 1 + 4 + 4 + len(caBlob) + 4 + 1 + 4 + 8*len(serials)
	}
	b := make([]byte, 0, size)
	b = binary.BigEndian.AppendUint64(b, krlMagic)
	b = binary.BigEndian.AppendUint32(b, krlFormatVersion)
	b = binary.BigEndian.AppendUint64(b, version)
	b = binary.BigEndian.AppendUint64(b, uint64(max(generated.Unix(), 0)))
	b = binary.BigEndian.AppendUint64(b, 0) // flags: none are defined
	b = appendString(b, nil)                // reserved
	b = appendString(b, []byte(comment))
	if len(serials) == 0 {
		return b
	}
	// KRL_SECTION_CERTIFICATES: string ca_key, string reserved, then
	// subsections; here one KRL_SECTION_CERT_SERIAL_LIST of uint64s.
	b = append(b, krlSectionCertificates)
	sectionLen := 4 + len(caBlob) + 4 + 1 + 4 + 8*len(serials)
	b = binary.BigEndian.AppendUint32(b, uint32(sectionLen))
	b = appendString(b, caBlob)
	b = appendString(b, nil)
	b = append(b, krlCertSerialList)
	b = binary.BigEndian.AppendUint32(b, uint32(8*len(serials)))
	for _, s := range serials {
		b = binary.BigEndian.AppendUint64(b, s)
	}
	return b
}

func appendString(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// krlContents is what [parseKRL] reads from a KRL.
type krlContents struct {
	Version   uint64
	Generated time.Time
	Comment   string
	// Serials maps a CA public key blob to the serials revoked under it.
	Serials map[string][]uint64
}

// errKRL reports a KRL that parseKRL cannot read.
var errKRL = errors.New("malformed KRL")

// parseKRL reads a KRL as this package writes it: serial lists in
// certificate sections. It refuses other kinds of sections, which this
// package never writes.
func parseKRL(b []byte) (krlContents, error) {
	var k krlContents
	r := krlReader{b: b}
	if r.u64() != krlMagic || r.u32() != krlFormatVersion {
		return k, fmt.Errorf("%w: bad header", errKRL)
	}
	k.Version = r.u64()
	k.Generated = time.Unix(int64(r.u64()), 0)
	r.u64() // flags
	r.str() // reserved
	k.Comment = string(r.str())
	k.Serials = map[string][]uint64{}
	for r.err == nil && len(r.b) > 0 {
		typ := r.byte()
		sect := krlReader{b: r.str()}
		if r.err != nil {
			break
		}
		if typ != krlSectionCertificates {
			return k, fmt.Errorf("%w: section type %d", errKRL, typ)
		}
		ca := string(sect.str())
		sect.str() // reserved
		for sect.err == nil && len(sect.b) > 0 {
			sub := sect.byte()
			data := sect.str()
			if sub != krlCertSerialList || len(data)%8 != 0 {
				return k, fmt.Errorf("%w: certificate subsection type %#x", errKRL, sub)
			}
			for i := 0; i < len(data); i += 8 {
				k.Serials[ca] = append(k.Serials[ca], binary.BigEndian.Uint64(data[i:]))
			}
		}
		if sect.err != nil {
			return k, sect.err
		}
	}
	return k, r.err
}

// krlReader reads SSH wire encoding, remembering the first error.
type krlReader struct {
	b   []byte
	err error
}

func (r *krlReader) take(n int) []byte {
	if r.err != nil || n < 0 || len(r.b) < n {
		if r.err == nil {
			r.err = fmt.Errorf("%w: truncated", errKRL)
		}
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *krlReader) byte() byte {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *krlReader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *krlReader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (r *krlReader) str() []byte {
	n := r.u32()
	if n > uint32(len(r.b)) {
		r.take(len(r.b) + 1)
		return nil
	}
	return r.take(int(n))
}
