// Package k8s holds the farm's Kubernetes manifests (a Kustomize base and
// a GPU overlay); this test decodes them strictly into the API's types and
// builds them with Kustomize.
package k8s

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// decode unmarshals one manifest into its API type, refusing unknown
// fields (a misspelt or misplaced key fails).
func decode(doc []byte) (any, error) {
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return nil, err
	}
	var obj any
	switch meta.APIVersion + "/" + meta.Kind {
	case "v1/Secret":
		obj = &corev1.Secret{}
	case "v1/ConfigMap":
		obj = &corev1.ConfigMap{}
	case "v1/Service":
		obj = &corev1.Service{}
	case "apps/v1/StatefulSet":
		obj = &appsv1.StatefulSet{}
	case "apps/v1/Deployment":
		obj = &appsv1.Deployment{}
	case "policy/v1/PodDisruptionBudget":
		obj = &policyv1.PodDisruptionBudget{}
	default:
		return nil, fmt.Errorf("unexpected %s %s", meta.APIVersion, meta.Kind)
	}
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, err
	}
	// Case-sensitive and strict, as the API server decodes.
	strict, err := sigsjson.UnmarshalStrict(js, obj)
	if err != nil {
		return nil, err
	}
	if len(strict) > 0 {
		return nil, errors.Join(strict...)
	}
	return obj, nil
}

func TestManifestsDecodeStrictly(t *testing.T) {
	files, _ := filepath.Glob("*/*.yaml")
	n := 0
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range bytes.Split(b, []byte("\n---\n")) {
			if _, err := decode(doc); err != nil {
				t.Errorf("%s: %v", f, err)
			}
			n++
		}
	}
	if n < 8 {
		t.Fatalf("decoded %d manifests", n)
	}
	// The check has teeth: a field in the wrong place fails.
	if _, err := decode([]byte("apiVersion: v1\nkind: Service\nspec:\n  clusterIp: None\n")); err == nil {
		t.Error("a misspelt field decoded")
	}
}

// build runs Kustomize on dir and decodes every resource it emits.
func build(t *testing.T, dir string) map[string]any {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out := map[string]any{}
	for _, r := range rm.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		obj, err := decode(b)
		if err != nil {
			t.Fatalf("%s: %s %s: %v", dir, r.GetKind(), r.GetName(), err)
		}
		out[r.GetKind()+"/"+r.GetName()] = obj
	}
	return out
}

func TestKustomizeBuilds(t *testing.T) {
	base := build(t, "base")
	for _, want := range []string{"Secret/montage-tokens", "ConfigMap/montage-s3", "Service/montage-coordinator", "Service/montage-api",
		"StatefulSet/montage-coordinator", "PodDisruptionBudget/montage-coordinator", "Deployment/montage-agent"} {
		if base[want] == nil {
			t.Errorf("base lacks %s", want)
		}
	}
	ss := base["StatefulSet/montage-coordinator"].(*appsv1.StatefulSet)
	c := ss.Spec.Template.Spec.Containers[0]
	if *ss.Spec.Replicas != 3 || ss.Spec.ServiceName != "montage-coordinator" || len(ss.Spec.VolumeClaimTemplates) != 1 ||
		c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/healthz" || !strings.HasPrefix(c.Image, "ghcr.io/") {
		t.Errorf("coordinators: %d replicas, service %q, %d claims, readiness %+v, image %s", *ss.Spec.Replicas, ss.Spec.ServiceName,
			len(ss.Spec.VolumeClaimTemplates), c.ReadinessProbe, c.Image)
	}
	if svc := base["Service/montage-coordinator"].(*corev1.Service); svc.Spec.ClusterIP != "None" || !svc.Spec.PublishNotReadyAddresses {
		t.Error("the coordinators' service is not headless with not-ready addresses published")
	}
	if pdb := base["PodDisruptionBudget/montage-coordinator"].(*policyv1.PodDisruptionBudget); pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Error("the disruption budget allows more than one coordinator down")
	}
	if ss.Labels["app.kubernetes.io/part-of"] != "stream-montages" {
		t.Errorf("kustomize labels not applied: %v", ss.Labels)
	}

	gpu := build(t, "gpu")
	ag := gpu["Deployment/montage-agent"].(*appsv1.Deployment).Spec.Template.Spec.Containers[0]
	if q, ok := ag.Resources.Limits["nvidia.com/gpu"]; !ok || q.Value() != 1 || !strings.Contains(ag.Image, "nvidia") {
		t.Errorf("gpu agent: limits %v, image %s", ag.Resources.Limits, ag.Image)
	}
	if len(ag.Args) == 0 || ag.Resources.Requests.Cpu().IsZero() {
		t.Error("the GPU patch lost the base's container settings")
	}
}
