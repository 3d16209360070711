package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/functions/advance"
	"github.com/ferryhq/ferry/transport/mesh"
)

// maxRoutesSize bounds a routing table; a larger one is surely a mistake.
const maxRoutesSize = 1 << 20

// LoadRoutes reads and validates the routing table named by src:
//
//	ssm:/ferry/routes        an SSM parameter (String or SecureString)
//	s3://bucket/key          an S3 object
//	file:path or path        a local file
func LoadRoutes(ctx context.Context, awsCfg aws.Config, s3c *s3.Client, src string) (domain.Routes, error) {
	var data []byte
	var err error
	switch {
	case strings.HasPrefix(src, "ssm:"):
		name := strings.TrimPrefix(src, "ssm:")
		var out *ssm.GetParameterOutput
		out, err = ssm.NewFromConfig(awsCfg).GetParameter(ctx, &ssm.GetParameterInput{Name: &name, WithDecryption: aws.Bool(true)})
		if err == nil {
			data = []byte(aws.ToString(out.Parameter.Value))
		}
	case strings.HasPrefix(src, "s3://"):
		bucket, key, _ := strings.Cut(strings.TrimPrefix(src, "s3://"), "/")
		var out *s3.GetObjectOutput
		out, err = s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
		if err == nil {
			defer out.Body.Close()
			data, err = io.ReadAll(io.LimitReader(out.Body, maxRoutesSize))
		}
	case src == "":
		return domain.Routes{}, fmt.Errorf("no routes configured")
	default:
		data, err = os.ReadFile(strings.TrimPrefix(src, "file:"))
	}
	if err != nil {
		return domain.Routes{}, fmt.Errorf("load routes from %s: %w", src, err)
	}
	return domain.ParseRoutes(data)
}

// CheckRoutes reports, all at once, what New would refuse in a routing
// table that parses: endpoint settings of each transport, routes whose
// destination has no transport, a malformed mesh section. It needs no AWS:
// secrets are not read.
func CheckRoutes(routes domain.Routes) error {
	transports := map[string]advance.Transport{"s3": nil, "null": nil}
	endpoints := endpointTransports(transports, routes, nil, nil, nil)
	var meshErr error
	if routes.MESH != nil {
		_, meshErr = mesh.ParseConfig(routes.MESH)
	}
	return errors.Join(endpoints, checkTransports(routes, transports), meshErr)
}
