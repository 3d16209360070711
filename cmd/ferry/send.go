package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/local/resources"
)

// metaFlags collects repeated --meta k=v flags.
type metaFlags map[string]string

func (m metaFlags) String() string { return fmt.Sprint(map[string]string(m)) }

func (m metaFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", v)
	}
	m[strings.ToLower(k)] = val
	return nil
}

func runSend(ctx context.Context, e *env, args []string) error {
	fs := newFlags("send", e.stderr)
	bucket := fs.String("bucket", resources.Defaults().UploadBucket, "bucket to upload to (default: the local stack's upload bucket)")
	key := fs.String("key", "", "object key (default outbound/<file name>)")
	meta := metaFlags{}
	fs.Var(meta, "meta", "upload metadata key=value (sender, recipient, workflow, filename, subject, localid); repeatable")
	watch := fs.Bool("watch", false, "print the transfer's timeline until it finishes")
	observe := fs.String("observe-queue", "", "with --watch: also wait for the Transfer Delivered event on this SQS queue (an EventBridge rule target)")
	until := fs.String("until", "delivered", "with --watch: stop at delivered or acknowledged")
	asJSON := fs.Bool("json", false, "print JSON lines: the upload, then (with --watch) one object per event")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one file")
	}
	if *until != "delivered" && *until != "acknowledged" {
		return usagef("--until must be delivered or acknowledged")
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if *key == "" {
		*key = "outbound/" + filepath.Base(pos[0])
	}
	s3c, err := e.s3(ctx)
	if err != nil {
		return err
	}
	// PutObject streams the file from disk (it is seekable), so nothing is
	// held in memory; S3 takes up to 5 GB in one PutObject.
	p := newProgress(e.stdout, *asJSON)
	put, err := s3c.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        bucket,
		Key:           key,
		Body:          p.upload(f, info.Size()),
		ContentLength: aws.Int64(info.Size()),
		Metadata:      meta,
	})
	if err != nil {
		return fmt.Errorf("upload s3://%s/%s: %w", *bucket, *key, err)
	}
	head, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: bucket, Key: key, VersionId: put.VersionId})
	if err != nil {
		return fmt.Errorf("head s3://%s/%s: %w", *bucket, *key, err)
	}
	version := aws.ToString(head.VersionId)
	if version == "null" {
		version = ""
	}
	id := domain.ObjectTransferID(*bucket, *key, version, aws.ToString(head.ETag), aws.ToTime(head.LastModified))
	p.done()
	if *asJSON {
		b, _ := json.Marshal(map[string]any{"uploaded": "s3://" + *bucket + "/" + *key, "bytes": info.Size(), "transferId": id})
		fmt.Fprintf(e.stdout, "%s\n", b)
	} else {
		p.line(fmt.Sprintf("uploaded s3://%s/%s (%d bytes) → transfer %s", *bucket, *key, info.Size(), id))
	}
	if !*watch {
		return nil
	}
	return watchTransfer(ctx, e, p, id, *observe, 0, *until == "acknowledged")
}
