// Package cost turns the AWS operations a transfer costs, as ferry local
// counts them (internal/local/opcount), into list-price dollars, beside
// AWS Transfer Family's price for the same volume.
//
// The prices are one table, Prices, in us-east-1 at on-demand list price,
// dated PricesDated, taken from the AWS pricing pages:
//
//   - https://aws.amazon.com/lambda/pricing/ (Arm: ferry's functions are arm64)
//   - https://aws.amazon.com/dynamodb/pricing/on-demand/
//   - https://aws.amazon.com/s3/pricing/ (S3 Standard requests)
//   - https://aws.amazon.com/sqs/pricing/ (standard queues)
//   - https://aws.amazon.com/eventbridge/pricing/ (custom events)
//   - https://aws.amazon.com/kms/pricing/
//   - https://aws.amazon.com/aws-transfer-family/pricing/
//
// Free tiers, storage, data transfer out of the region, CloudWatch Logs
// and the KMS key's monthly fee are left out: the model prices the work a
// transfer causes, not an account.
package cost

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
)

// PricesDated is the day the prices in Prices were read.
const PricesDated = "2026-12-03"

// Price is one line of the price table: dollars per Per units.
type Price struct {
	Dollars float64
	Per     float64
	Unit    string
}

// Each returns the price of one unit.
func (p Price) Each() float64 { return p.Dollars / p.Per }

// The items of the price table.
const (
	LambdaRequest      = "Lambda requests"
	LambdaGBSecond     = "Lambda duration (arm64, GB-s)"
	DynamoDBWrite      = "DynamoDB on-demand write request units"
	DynamoDBRead       = "DynamoDB on-demand read request units"
	DynamoDBStreamRead = "DynamoDB Streams read requests"
	S3Tier1            = "S3 PUT, COPY, POST, LIST requests"
	S3Tier2            = "S3 GET and other requests"
	SQSRequest         = "SQS standard requests (64 KB each)"
	EventBridgeEvent   = "EventBridge custom events (64 KB each)"
	KMSRequest         = "KMS requests"
	TransferEndpoint   = "Transfer Family protocol endpoint hour"
	TransferGB         = "Transfer Family GB uploaded or downloaded"
)

// Prices is the price table (us-east-1, list price, PricesDated).
var Prices = map[string]Price{
	LambdaRequest:      {0.20, 1e6, "requests"},
	LambdaGBSecond:     {0.0000133334, 1, "GB-second"},
	DynamoDBWrite:      {0.625, 1e6, "write request units"},
	DynamoDBRead:       {0.125, 1e6, "read request units"},
	DynamoDBStreamRead: {0.02, 1e5, "GetRecords requests"},
	S3Tier1:            {0.005, 1e3, "requests"},
	S3Tier2:            {0.0004, 1e3, "requests"},
	SQSRequest:         {0.40, 1e6, "requests"},
	EventBridgeEvent:   {1.00, 1e6, "events"},
	KMSRequest:         {0.03, 1e4, "requests"},
	TransferEndpoint:   {0.30, 1, "endpoint hour"},
	TransferGB:         {0.04, 1, "GB"},
}

// HoursPerMonth is AWS's month for hourly prices (730 hours).
const HoursPerMonth = 730

// Ops are the operations counted for one transfer, or for one chunk.
type Ops struct {
	// Invocations are Lambda invocations (batches), GBSeconds their run
	// time times the function's memory.
	Invocations, GBSeconds float64
	// DynamoDBWrites are item writes (one write unit each up to 1 KB),
	// DynamoDBReads read calls (one read unit each: items are small; a
	// strongly consistent read of up to 4 KB is one unit).
	DynamoDBWrites, DynamoDBReads float64
	// StreamReads are DynamoDB Streams GetRecords calls. Those a Lambda
	// event source mapping makes are free (the DynamoDB pricing page), so
	// they are shown and not charged unless StreamReadsCharged.
	StreamReads        float64
	StreamReadsCharged bool
	// S3Tier1 are PUT, COPY (UploadPartCopy, CopyObject), POST and LIST
	// requests; S3Tier2 GET, HEAD and the rest.
	S3Tier1, S3Tier2 float64
	// SQS are SQS requests: sends, receives, deletes, visibility changes.
	SQS float64
	// EventBridgeEntries are PutEvents entries (each under 64 KB).
	EventBridgeEntries float64
	// KMS are KMS requests.
	KMS float64
}

// Add returns o plus n times p.
func (o Ops) Add(p Ops, n float64) Ops {
	return Ops{
		Invocations: o.Invocations + n*p.Invocations, GBSeconds: o.GBSeconds + n*p.GBSeconds,
		DynamoDBWrites: o.DynamoDBWrites + n*p.DynamoDBWrites, DynamoDBReads: o.DynamoDBReads + n*p.DynamoDBReads,
		StreamReads: o.StreamReads + n*p.StreamReads, StreamReadsCharged: o.StreamReadsCharged || p.StreamReadsCharged,
		S3Tier1: o.S3Tier1 + n*p.S3Tier1, S3Tier2: o.S3Tier2 + n*p.S3Tier2,
		SQS: o.SQS + n*p.SQS, EventBridgeEntries: o.EventBridgeEntries + n*p.EventBridgeEntries, KMS: o.KMS + n*p.KMS,
	}
}

// Line is one item of a bill.
type Line struct {
	Item     string
	Quantity float64
	Dollars  float64
}

// Bill is the cost of a number of transfers.
type Bill struct {
	Transfers int
	Lines     []Line
}

// Total returns the sum of the bill's lines.
func (b Bill) Total() float64 {
	var t float64
	for _, l := range b.Lines {
		t += l.Dollars
	}
	return t
}

// Of returns the cost of n transfers that each cost per.
func Of(n int, per Ops) Bill {
	f := float64(n)
	line := func(item string, q float64) Line { return Line{item, q * f, q * f * Prices[item].Each()} }
	b := Bill{Transfers: n, Lines: []Line{
		line(LambdaRequest, per.Invocations),
		line(LambdaGBSecond, per.GBSeconds),
		line(DynamoDBWrite, per.DynamoDBWrites),
		line(DynamoDBRead, per.DynamoDBReads),
		line(DynamoDBStreamRead, per.StreamReads),
		line(S3Tier1, per.S3Tier1),
		line(S3Tier2, per.S3Tier2),
		line(SQSRequest, per.SQS),
		line(EventBridgeEvent, per.EventBridgeEntries),
		line(KMSRequest, per.KMS),
	}}
	if !per.StreamReadsCharged {
		b.Lines[4].Dollars = 0
	}
	return b
}

// TransferFamily returns AWS Transfer Family's price for n transfers of
// size bytes each: the data charge (per GB, 10⁹ bytes) alone, and with one
// protocol endpoint running for a month, the least a deployment pays.
func TransferFamily(n int, size int64) (data, withEndpointMonth float64) {
	gb := float64(n) * float64(size) / 1e9
	data = gb * Prices[TransferGB].Each()
	return data, data + HoursPerMonth*Prices[TransferEndpoint].Each()
}

// Calls sorts counted AWS calls ("Service.Operation" → count, as opcount
// reports them) into Ops: DynamoDB writes and reads are passed apart (item
// writes are not calls), so DynamoDB calls are skipped here; S3 calls fall
// in tier 1 or 2 by operation; DynamoDB Streams GetRecords are stream
// reads; every SQS and KMS call is one request. Calls of other services
// (Secrets Manager, SSM, …) are returned in other, unpriced.
func Calls(calls map[string]float64) (o Ops, other []string) {
	for op, n := range calls {
		svc, name, _ := strings.Cut(op, ".")
		switch svc {
		case "DynamoDB", "EventBridge":
			// Priced by item writes, reads and entries, passed apart.
		case "DynamoDB Streams":
			if name == "GetRecords" {
				o.StreamReads += n
			}
		case "S3":
			if s3Tier1[name] {
				o.S3Tier1 += n
			} else {
				o.S3Tier2 += n
			}
		case "SQS":
			o.SQS += n
		case "KMS":
			o.KMS += n
		default:
			other = append(other, op)
		}
	}
	sort.Strings(other)
	return o, other
}

// s3Tier1 are the S3 operations priced as PUT, COPY, POST or LIST.
var s3Tier1 = map[string]bool{
	"PutObject": true, "CopyObject": true, "UploadPart": true, "UploadPartCopy": true,
	"CreateMultipartUpload": true, "CompleteMultipartUpload": true, "ListParts": true,
	"ListObjects": true, "ListObjectsV2": true, "ListObjectVersions": true, "ListMultipartUploads": true,
	"PutObjectTagging": true, "DeleteObjects": true,
}

// Print writes bills side by side, one column per bill, with Transfer
// Family's price for each bill's volume (sizes[i] bytes a transfer).
func Print(w io.Writer, names []string, bills []Bill, sizes []int64) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "AWS list price, us-east-1, %s\t", PricesDated)
	for i, n := range names {
		fmt.Fprintf(tw, "%d × %s\t", bills[i].Transfers, n)
	}
	fmt.Fprintln(tw)
	for j, l := range bills[0].Lines {
		fmt.Fprintf(tw, "%s\t", l.Item)
		for _, b := range bills {
			fmt.Fprintf(tw, "%s\t", dollars(b.Lines[j].Dollars))
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintf(tw, "ferry total\t")
	for _, b := range bills {
		fmt.Fprintf(tw, "%s\t", dollars(b.Total()))
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "Transfer Family, data only ($0.04/GB)\t")
	for i, b := range bills {
		d, _ := TransferFamily(b.Transfers, sizes[i])
		fmt.Fprintf(tw, "%s\t", dollars(d))
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "Transfer Family, + one endpoint for a month\t")
	for i, b := range bills {
		_, m := TransferFamily(b.Transfers, sizes[i])
		fmt.Fprintf(tw, "%s\t", dollars(m))
	}
	fmt.Fprintln(tw)
	_ = tw.Flush()
}

// dollars formats d with four significant digits, at least to the cent.
func dollars(d float64) string {
	if d == 0 {
		return "$0"
	}
	decimals := max(2, 3-int(math.Floor(math.Log10(math.Abs(d)))))
	return fmt.Sprintf("$%.*f", decimals, d)
}

// MemoryMB is each function's MemorySize in infra/template.yaml (by
// Handler name; DefaultMemoryMB for the rest, the template's Globals), for
// turning run time into GB-seconds. A test holds it to the template.
var MemoryMB = map[string]int{"advance": 1024, "authorizer": 128, "live": 128}

// DefaultMemoryMB is the template's Globals MemorySize.
const DefaultMemoryMB = 256

// GBSeconds returns the GB-seconds of run times by function (seconds),
// with each function's MemoryMB.
func GBSeconds(seconds map[string]float64) float64 {
	var gbs float64
	for f, s := range seconds {
		mb, ok := MemoryMB[f]
		if !ok {
			mb = DefaultMemoryMB
		}
		gbs += s * float64(mb) / 1024
	}
	return gbs
}
