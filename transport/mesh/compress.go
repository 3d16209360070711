package mesh

import (
	"io"
	"net/url"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
)

// CompressOptions are the operator's compression settings.
type CompressOptions struct {
	// Threshold is the size in bytes from which a file is compressed.
	Threshold int64
	// Never turns compression off.
	Never bool
}

// ShouldCompress decides whether a file is sent gzip-compressed, by the
// seed client's rule (terraform-aws-mesh-client's get_send_parameters):
//
//  1. never when opt.Never, or when the metadata's mex-content-compressed
//     says the data is already compressed;
//  2. otherwise compress when size ≥ opt.Threshold,
//  3. but not when the object has a Content-Encoding;
//  4. and an explicit mex-content-compress value overrides 2 and 3.
//
// As in the seed, the override does not beat rule 1: a file marked
// compressed, or a configuration that never compresses, is never
// compressed. Metadata keys are matched case-insensitively and values are
// quote_plus-decoded. Flag values are read like Python's strtobool (y, yes,
// t, true, on, 1 / n, no, f, false, off, 0); an unrecognised value counts
// as false, as bool(strtobool(v)) does in the seed.
func ShouldCompress(meta map[string]string, contentEncoding string, size int64, opt CompressOptions) bool {
	m := make(map[string]string, len(meta))
	for k, v := range meta {
		if d, err := url.QueryUnescape(v); err == nil {
			v = d
		}
		m[strings.ToLower(strings.TrimSpace(k))] = v
	}
	if opt.Never {
		return false
	}
	if v, ok := m["mex-content-compressed"]; ok && truthy(v) {
		return false
	}
	compress := size >= opt.Threshold
	if strings.TrimSpace(contentEncoding) != "" {
		compress = false
	}
	if v, ok := m["mex-content-compress"]; ok {
		compress = truthy(v)
	}
	return compress
}

// gzipLevel is the compression level of sent chunks. klauspost/compress's
// gzip at BestSpeed compresses text about eight times as fast as the
// standard library's default level for a few percent more output, and
// stores incompressible data at memory speed where the standard library
// crawls (BenchmarkGzip); any gzip reader reads it.
const gzipLevel = gzip.BestSpeed

// gzipWriters reuses compressors: each holds several hundred KiB of state.
var gzipWriters = sync.Pool{New: func() any {
	zw, err := gzip.NewWriterLevel(io.Discard, gzipLevel)
	if err != nil {
		panic(err) // the level is a valid constant
	}
	return zw
}}

// gzipPipe returns a reader yielding src gzip-compressed as it is read,
// without holding more than the compressor's window in memory. done is
// closed once the compressing goroutine has stopped; close the returned
// reader to make it stop early.
func gzipPipe(src io.Reader) (*io.PipeReader, <-chan struct{}) {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		zw := gzipWriters.Get().(*gzip.Writer)
		zw.Reset(pw)
		_, err := io.Copy(zw, src)
		if cerr := zw.Close(); err == nil {
			err = cerr
		}
		zw.Reset(io.Discard)
		gzipWriters.Put(zw)
		pw.CloseWithError(err) // nil: the reader sees io.EOF
	}()
	return pr, done
}

// body is a downloaded chunk's body: gunzipped when the response is
// gzip-encoded, with every read error classified.
type body struct {
	op   string
	resp io.ReadCloser
	gzip bool

	once sync.Once
	r    io.Reader
	zr   *gzip.Reader
	err  error
}

func (b *body) Read(p []byte) (int, error) {
	b.once.Do(func() {
		if !b.gzip {
			b.r = b.resp
			return
		}
		zr, err := gzip.NewReader(b.resp)
		switch {
		case err == io.EOF: // an empty body: nothing was encoded
			b.r = strings.NewReader("")
		case err != nil:
			b.err = ioError(b.op, err)
		default:
			b.zr, b.r = zr, zr
		}
	})
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		return n, ioError(b.op, err)
	}
	return n, err
}

func (b *body) Close() error {
	if b.zr != nil {
		_ = b.zr.Close()
	}
	return b.resp.Close()
}
