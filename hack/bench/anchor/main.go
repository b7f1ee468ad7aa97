// Command anchor is the Go anchor of `bench --cluster real`: a minimal
// hostpath provisioner on sigs.k8s.io/sig-storage-lib-external-provisioner,
// shaped like that library's examples/hostpath-provisioner (a mkdir per
// claim under --root, Delete removes the directory), so the benchmark can
// run the Go controller library on the same control plane, with the same
// claims, worker count and client QPS/burst as ours.
//
// Everything but the flags below stays at the library's defaults (4 claim
// and 4 volume workers, leader election on a Lease in POD_NAMESPACE, no
// finalizer, resync 15 min). The PV carries node affinity to the claim's
// selected node, as ours does; the node's kubernetes.io/hostname label is
// taken to equal its name (the bench makes its node that way).
//
// The library logs "Started provisioner controller" once it leads, its
// informers are synced and its workers run: the bench waits for that line.
package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"
)

// hostPathProvisioner makes one directory per volume under root.
type hostPathProvisioner struct {
	root string
}

// Provision makes the volume's directory and returns its PV.
func (p *hostPathProvisioner) Provision(_ context.Context, o controller.ProvisionOptions) (*v1.PersistentVolume, controller.ProvisioningState, error) {
	path := filepath.Join(p.root, o.PVName)
	if err := os.MkdirAll(path, 0o777); err != nil {
		return nil, controller.ProvisioningFinished, err
	}
	pv := &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: o.PVName},
		Spec: v1.PersistentVolumeSpec{
			PersistentVolumeReclaimPolicy: *o.StorageClass.ReclaimPolicy,
			AccessModes:                   o.PVC.Spec.AccessModes,
			Capacity: v1.ResourceList{
				v1.ResourceStorage: o.PVC.Spec.Resources.Requests[v1.ResourceStorage],
			},
			PersistentVolumeSource: v1.PersistentVolumeSource{
				HostPath: &v1.HostPathVolumeSource{Path: path},
			},
		},
	}
	if o.SelectedNodeName != "" {
		pv.Spec.NodeAffinity = &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{
			NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{{
				Key: "kubernetes.io/hostname", Operator: v1.NodeSelectorOpIn, Values: []string{o.SelectedNodeName},
			}}}},
		}}
	}
	return pv, controller.ProvisioningFinished, nil
}

// Delete removes the volume's directory.
func (p *hostPathProvisioner) Delete(_ context.Context, pv *v1.PersistentVolume) error {
	if pv.Spec.HostPath == nil {
		return errors.New("not a hostPath volume")
	}
	return os.RemoveAll(pv.Spec.HostPath.Path)
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig file")
	name := flag.String("provisioner-name", "bench.external-storage.io/anchor", "provisioner name")
	root := flag.String("root", "", "directory the volumes are made in")
	qps := flag.Float64("kube-api-qps", 0, "client QPS (0 = client-go's default 5, negative = no limit)")
	burst := flag.Int("kube-api-burst", 0, "client burst (0 = client-go's default 10)")
	threads := flag.Int("threadiness", controller.DefaultThreadiness, "claim and volume workers (each)")
	klog.InitFlags(nil)
	flag.Parse()
	if *root == "" {
		klog.Fatal("--root is required")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		klog.Fatalf("kubeconfig: %v", err)
	}
	cfg.QPS, cfg.Burst = float32(*qps), *burst
	cfg.UserAgent = "anchor"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		klog.Fatalf("client: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pc := controller.NewProvisionController(ctx, client, *name, &hostPathProvisioner{root: *root},
		controller.Threadiness(*threads))
	pc.Run(ctx)
}
