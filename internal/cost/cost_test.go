package cost

import (
	"bufio"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func near(got, want float64) bool { return math.Abs(got-want) <= 1e-9*math.Max(1, math.Abs(want)) }

func TestOfPricesEachLine(t *testing.T) {
	per := Ops{
		Invocations: 5, GBSeconds: 0.5, DynamoDBWrites: 6, DynamoDBReads: 6, StreamReads: 2,
		S3Tier1: 4, S3Tier2: 3, SQS: 3, EventBridgeEntries: 4, KMS: 1,
	}
	b := Of(1000, per)
	want := map[string]float64{
		LambdaRequest:      5000 * 0.20 / 1e6,    // $0.001
		LambdaGBSecond:     500 * 0.0000133334,   // $0.0066667
		DynamoDBWrite:      6000 * 0.625 / 1e6,   // $0.00375
		DynamoDBRead:       6000 * 0.125 / 1e6,   // $0.00075
		DynamoDBStreamRead: 0,                    // free for Lambda triggers
		S3Tier1:            4000 * 0.005 / 1000,  // $0.02
		S3Tier2:            3000 * 0.0004 / 1000, // $0.0012
		SQSRequest:         3000 * 0.40 / 1e6,    // $0.0012
		EventBridgeEvent:   4000 * 1.00 / 1e6,    // $0.004
		KMSRequest:         1000 * 0.03 / 1e4,    // $0.003
	}
	if len(b.Lines) != len(want) {
		t.Fatalf("%d lines, want %d", len(b.Lines), len(want))
	}
	var total float64
	for _, l := range b.Lines {
		if !near(l.Dollars, want[l.Item]) {
			t.Errorf("%s = $%g, want $%g", l.Item, l.Dollars, want[l.Item])
		}
		total += want[l.Item]
	}
	if !near(b.Total(), total) || math.Abs(total-0.0415667) > 1e-6 {
		t.Errorf("total = $%g, want $%g (≈ $0.0416)", b.Total(), total)
	}
	if got := b.Lines[4].Quantity; got != 2000 {
		t.Errorf("stream reads shown = %g, want 2000 (shown though not charged)", got)
	}
	per.StreamReadsCharged = true
	if got := Of(1000, per).Lines[4].Dollars; !near(got, 2000*0.02/1e5) {
		t.Errorf("charged stream reads = $%g, want $0.0004", got)
	}
}

func TestAddScalesPerChunk(t *testing.T) {
	one := Ops{DynamoDBWrites: 6, S3Tier1: 4, EventBridgeEntries: 4}
	chunk := Ops{DynamoDBWrites: 2, S3Tier1: 1, EventBridgeEntries: 1}
	got := one.Add(chunk, 51) // 1 GiB in 20 MiB chunks: 52 chunks, 51 more than one
	if got.DynamoDBWrites != 108 || got.S3Tier1 != 55 || got.EventBridgeEntries != 55 {
		t.Errorf("got %+v, want 108 writes, 55 S3 tier-1 requests, 55 entries", got)
	}
}

func TestTransferFamily(t *testing.T) {
	data, month := TransferFamily(1000, 1<<30) // 1,000 GiB = 1,073.74 GB
	if !near(data, 1073.741824*0.04) {
		t.Errorf("data = $%g, want $42.95", data)
	}
	if !near(month-data, 219) {
		t.Errorf("endpoint month = $%g, want $219 (730 h × $0.30)", month-data)
	}
}

func TestCallsSortsOperations(t *testing.T) {
	o, other := Calls(map[string]float64{
		"S3.UploadPartCopy": 1, "S3.CompleteMultipartUpload": 1, "S3.HeadObject": 2, "S3.GetObject": 1,
		"SQS.ReceiveMessage": 3, "SQS.DeleteMessageBatch": 1, "DynamoDB Streams.GetRecords": 7,
		"DynamoDB Streams.GetShardIterator": 1, "DynamoDB.PutItem": 9, "EventBridge.PutEvents": 2, "KMS.Decrypt": 1,
		"SSM.GetParameter": 1,
	})
	if o.S3Tier1 != 2 || o.S3Tier2 != 3 || o.SQS != 4 || o.StreamReads != 7 || o.KMS != 1 || o.DynamoDBWrites != 0 || o.EventBridgeEntries != 0 {
		t.Errorf("got %+v", o)
	}
	if len(other) != 1 || other[0] != "SSM.GetParameter" {
		t.Errorf("other = %v, want [SSM.GetParameter]", other)
	}
}

func TestGBSeconds(t *testing.T) {
	got := GBSeconds(map[string]float64{"advance": 2, "intake": 4, "live": 8})
	if want := 2*1.0 + 4*0.25 + 8*0.125; !near(got, want) {
		t.Errorf("GB-s = %g, want %g", got, want)
	}
}

// TestMemoryMatchesTemplate holds MemoryMB to infra/template.yaml.
func TestMemoryMatchesTemplate(t *testing.T) {
	f, err := os.Open("../../infra/template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	handler := regexp.MustCompile(`^\s+Handler: (\w+)\s*$`)
	memory := regexp.MustCompile(`^(\s+)MemorySize: (\d+)\s*$`)
	got := map[string]int{}
	globals, current := 0, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, " ") && line != "" {
			current = ""
		}
		if m := handler.FindStringSubmatch(line); m != nil {
			current = m[1]
		}
		if m := memory.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[2])
			if len(m[1]) == 4 && current == "" { // Globals: Function: MemorySize
				globals = n
			} else if current != "" {
				got[current] = n
			}
		}
	}
	if globals != DefaultMemoryMB {
		t.Errorf("template Globals MemorySize = %d, DefaultMemoryMB = %d", globals, DefaultMemoryMB)
	}
	for h, mb := range got {
		if MemoryMB[h] != mb {
			t.Errorf("%s: template MemorySize %d, MemoryMB %d", h, mb, MemoryMB[h])
		}
	}
	for h, mb := range MemoryMB {
		if got[h] != mb {
			t.Errorf("%s: MemoryMB %d, template %d", h, mb, got[h])
		}
	}
}

func TestDollars(t *testing.T) {
	for _, c := range []struct {
		in   float64
		want string
	}{{0, "$0"}, {219.04, "$219.04"}, {0.0415667, "$0.04157"}, {1.5, "$1.500"}, {0.001, "$0.001000"}} {
		if got := dollars(c.in); got != c.want {
			t.Errorf("dollars(%g) = %s, want %s", c.in, got, c.want)
		}
	}
}
