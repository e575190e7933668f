// Package v1alpha4 holds the fields of kind's `kind.x-k8s.io/v1alpha4` Cluster config, so a
// config is decoded as strictly as kind decodes it (unknown fields are errors, and the errors
// name these types as kind's do: "field x not found in type v1alpha4.Cluster").
package v1alpha4

// Cluster is a kind cluster config.
type Cluster struct {
	Kind                            string            `yaml:"kind,omitempty"`
	APIVersion                      string            `yaml:"apiVersion,omitempty"`
	Name                            string            `yaml:"name,omitempty"`
	Nodes                           []Node            `yaml:"nodes,omitempty"`
	Networking                      Networking        `yaml:"networking,omitempty"`
	FeatureGates                    map[string]bool   `yaml:"featureGates,omitempty"`
	RuntimeConfig                   map[string]string `yaml:"runtimeConfig,omitempty"`
	KubeadmConfigPatches            []string          `yaml:"kubeadmConfigPatches,omitempty"`
	KubeadmConfigPatchesJSON6902    []PatchJSON6902   `yaml:"kubeadmConfigPatchesJSON6902,omitempty"`
	ContainerdConfigPatches         []string          `yaml:"containerdConfigPatches,omitempty"`
	ContainerdConfigPatchesJSON6902 []string          `yaml:"containerdConfigPatchesJSON6902,omitempty"`
}

// Node is one node (a container, for real kind) of the cluster.
type Node struct {
	Role                         string            `yaml:"role,omitempty"`
	Image                        string            `yaml:"image,omitempty"`
	Labels                       map[string]string `yaml:"labels,omitempty"`
	ExtraMounts                  []Mount           `yaml:"extraMounts,omitempty"`
	ExtraPortMappings            []PortMapping     `yaml:"extraPortMappings,omitempty"`
	GPUs                         string            `yaml:"gpus,omitempty"`
	KubeadmConfigPatches         []string          `yaml:"kubeadmConfigPatches,omitempty"`
	KubeadmConfigPatchesJSON6902 []PatchJSON6902   `yaml:"kubeadmConfigPatchesJSON6902,omitempty"`
}

// Networking is the cluster-wide network settings.
type Networking struct {
	IPFamily          string    `yaml:"ipFamily,omitempty"`
	APIServerPort     int32     `yaml:"apiServerPort,omitempty"`
	APIServerAddress  string    `yaml:"apiServerAddress,omitempty"`
	PodSubnet         string    `yaml:"podSubnet,omitempty"`
	ServiceSubnet     string    `yaml:"serviceSubnet,omitempty"`
	DisableDefaultCNI bool      `yaml:"disableDefaultCNI,omitempty"`
	KubeProxyMode     string    `yaml:"kubeProxyMode,omitempty"`
	DNSSearch         *[]string `yaml:"dnsSearch,omitempty"`
}

// PatchJSON6902 is an RFC 6902 patch for one kubeadm object.
type PatchJSON6902 struct {
	Group   string `yaml:"group"`
	Version string `yaml:"version"`
	Kind    string `yaml:"kind"`
	Patch   string `yaml:"patch"`
}

// Mount is a host path mounted into a node.
type Mount struct {
	ContainerPath  string `yaml:"containerPath,omitempty"`
	HostPath       string `yaml:"hostPath,omitempty"`
	Readonly       bool   `yaml:"readOnly,omitempty"`
	SelinuxRelabel bool   `yaml:"selinuxRelabel,omitempty"`
	Propagation    string `yaml:"propagation,omitempty"`
}

// PortMapping maps a host port into a node.
type PortMapping struct {
	ContainerPort int32  `yaml:"containerPort,omitempty"`
	HostPort      int32  `yaml:"hostPort,omitempty"`
	ListenAddress string `yaml:"listenAddress,omitempty"`
	Protocol      string `yaml:"protocol,omitempty"`
}
