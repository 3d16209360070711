package mesh

import (
	"bytes"
	stdgzip "compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"
)

// benchData returns 4 MiB of incompressible bytes (what the MESH benchmark
// sends) or of CSV-like text (what MESH users mostly send).
func benchData(kind string) []byte {
	const n = 4 << 20
	r := rand.New(rand.NewPCG(1, 2))
	if kind == "random" {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	var buf bytes.Buffer
	for i := 0; buf.Len() < n; i++ {
		fmt.Fprintf(&buf, "%d,NHS%07d,%s,%d.%02d,2026-%02d-%02d,%s\n", i, r.IntN(1e7),
			[]string{"GP", "ACUTE", "MENTAL HEALTH", "COMMUNITY"}[r.IntN(4)], r.IntN(5000), r.IntN(100),
			1+r.IntN(12), 1+r.IntN(28), []string{"attended", "did not attend", "cancelled"}[r.IntN(3)])
	}
	return buf.Bytes()[:n]
}

// BenchmarkGzip compares the standard library's gzip writer with
// klauspost/compress's at the levels Send could use, on incompressible and
// on text data. Compare ns/op (and MB/s) between sub-benchmarks of one run;
// "ratio" is compressed size / input size.
func BenchmarkGzip(b *testing.B) {
	writers := []struct {
		name string
		new  func(io.Writer) io.WriteCloser
	}{
		{"stdlib-default", func(w io.Writer) io.WriteCloser { return stdgzip.NewWriter(w) }},
		{"stdlib-speed", func(w io.Writer) io.WriteCloser { z, _ := stdgzip.NewWriterLevel(w, stdgzip.BestSpeed); return z }},
		{"klauspost-default", func(w io.Writer) io.WriteCloser { return kgzip.NewWriter(w) }},
		{"klauspost-speed", func(w io.Writer) io.WriteCloser { z, _ := kgzip.NewWriterLevel(w, kgzip.BestSpeed); return z }},
	}
	for _, kind := range []string{"random", "text"} {
		data := benchData(kind)
		for _, wr := range writers {
			b.Run(kind+"/"+wr.name, func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				var out countWriter
				for b.Loop() {
					out = 0
					zw := wr.new(&out)
					if _, err := zw.Write(data); err != nil {
						b.Fatal(err)
					}
					if err := zw.Close(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(out)/float64(len(data)), "ratio")
			})
		}
	}
}

// BenchmarkGunzip compares the readers on what the default writer makes.
func BenchmarkGunzip(b *testing.B) {
	for _, kind := range []string{"random", "text"} {
		var gz bytes.Buffer
		zw := stdgzip.NewWriter(&gz)
		_, _ = zw.Write(benchData(kind))
		_ = zw.Close()
		readers := []struct {
			name string
			new  func(io.Reader) (io.Reader, error)
		}{
			{"stdlib", func(r io.Reader) (io.Reader, error) { return stdgzip.NewReader(r) }},
			{"klauspost", func(r io.Reader) (io.Reader, error) { return kgzip.NewReader(r) }},
		}
		for _, rd := range readers {
			b.Run(kind+"/"+rd.name, func(b *testing.B) {
				b.SetBytes(4 << 20)
				for b.Loop() {
					zr, err := rd.new(bytes.NewReader(gz.Bytes()))
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.Copy(io.Discard, zr); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }
