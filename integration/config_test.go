//go:build integration

package integration

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/ferryhq/ferry/internal/app"
)

func TestRoutesLoadFromSSMAndS3(t *testing.T) {
	ctx := context.Background()
	data, err := os.ReadFile(stack.routes)
	if err != nil {
		t.Fatal(err)
	}
	name := "/" + uniq("ferry") + "/routes"
	if _, err := ssm.NewFromConfig(stack.awsCfg).PutParameter(ctx, &ssm.PutParameterInput{
		Name: &name, Value: aws.String(string(data)), Type: ssmtypes.ParameterTypeSecureString,
	}); err != nil {
		t.Fatal(err)
	}
	key := uniq("config") + "/routes.json"
	if _, err := stack.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(stack.res.DeliveryBucket), Key: &key, Body: strings.NewReader(string(data))}); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{"ssm:" + name, "s3://" + stack.res.DeliveryBucket + "/" + key, stack.routes} {
		t.Run(src, func(t *testing.T) {
			rs, err := app.LoadRoutes(ctx, stack.awsCfg, stack.s3, src)
			if err != nil {
				t.Fatal(err)
			}
			if len(rs.Routes) != 19 || rs.SFTP["partner"] == nil || rs.HTTPS["peer"] == nil || rs.Azblob["lake"] == nil || rs.Email["mailpit"] == nil || rs.Routes[8].Name != "to-partner-a" || rs.Routes[8].Destination.Bucket != "ferry-local-delivered" || rs.Routes[6].Match.Bucket != "ferry-local-mesh" || rs.Routes[2].Match.EmailTo != "lab@ferry.test" || rs.MESH == nil {
				t.Fatalf("routes = %+v", rs.Routes)
			}
		})
	}
	t.Run("a missing parameter is an error naming it", func(t *testing.T) {
		_, err := app.LoadRoutes(ctx, stack.awsCfg, stack.s3, "ssm:/no/such/param")
		if err == nil || !strings.Contains(err.Error(), "ssm:/no/such/param") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestShowUnknownTransferExits1(t *testing.T) {
	out, code := stack.ferry(t, "show", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
	if code != 1 || !strings.HasPrefix(out, "ferry: show: ") || !strings.Contains(out, "not found") {
		t.Fatalf("exit %d, output %q", code, out)
	}
}
