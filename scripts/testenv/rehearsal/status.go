// The pod status and events a kubelet writes for a Verdict that is not OK, so that what a
// rehearsal shows (kubectl describe, kmsctl's failure report) reads like a real node's.
package main

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Pull phases of a container whose image cannot be pulled.
const (
	ErrImagePull     = "ErrImagePull"
	ImagePullBackOff = "ImagePullBackOff"
)

// pullMessage is the runtime's error for an image a private registry refuses without
// credentials; it names the missing secrets so that the cause is plain.
func pullMessage(image string, secrets []string, ns string) string {
	q := make([]string, len(secrets))
	for i, s := range secrets {
		q[i] = fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("failed to pull and unpack image %q: pull access denied, repository does not exist "+
		"or may require authorization: no credentials: imagePullSecrets %s not found in namespace %s",
		image, strings.Join(q, ", "), ns)
}

func waiting(c *corev1.Container, reason, message string) corev1.ContainerStatus {
	return corev1.ContainerStatus{
		Name: c.Name, Image: c.Image, Ready: false, RestartCount: 0, Started: new(false),
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}},
	}
}

func completed(c *corev1.Container, now metav1.Time) corev1.ContainerStatus {
	return corev1.ContainerStatus{
		Name: c.Name, Image: c.Image, Ready: true, Started: new(false),
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now}},
	}
}

// Status is the pod status for a failing verdict; pull is the pull phase (ErrImagePull or
// ImagePullBackOff) when pull secrets are missing.
func Status(pod *corev1.Pod, v Verdict, pull string, now time.Time) corev1.PodStatus {
	t := metav1.NewTime(now.Truncate(time.Second))
	inits, mains := pod.Spec.InitContainers, pod.Spec.Containers
	initStatus := make([]corev1.ContainerStatus, len(inits))
	mainStatus := make([]corev1.ContainerStatus, len(mains))
	mainDefault := "ContainerCreating"
	if len(inits) > 0 {
		mainDefault = "PodInitializing"
	}
	for i := range inits {
		initStatus[i] = waiting(&inits[i], "PodInitializing", "")
	}
	for i := range mains {
		mainStatus[i] = waiting(&mains[i], mainDefault, "")
	}
	initsDone := len(inits) == 0
	sandbox := true
	switch {
	case len(v.Mounts) > 0: // volumes are set up before any container
		sandbox = false
		for i := range inits {
			initStatus[i] = waiting(&inits[i], "ContainerCreating", "")
		}
	case len(v.PullSecrets) > 0:
		reason, msg := pull, pullMessage("", v.PullSecrets, pod.Namespace)
		pullOne := func(c *corev1.Container) corev1.ContainerStatus {
			msg = pullMessage(c.Image, v.PullSecrets, pod.Namespace)
			if reason == ImagePullBackOff {
				return waiting(c, reason, fmt.Sprintf("Back-off pulling image %q: ErrImagePull: %s", c.Image, msg))
			}
			return waiting(c, reason, msg)
		}
		if len(inits) > 0 {
			initStatus[0] = pullOne(&inits[0])
		} else {
			for i := range mains {
				mainStatus[i] = pullOne(&mains[i])
			}
		}
	default:
		byName := map[string]ContainerFailure{}
		for _, f := range v.Containers {
			byName[fmt.Sprint(f.Init, f.Container)] = f
		}
		pullBy := map[string]PullFailure{}
		for _, p := range v.Pulls {
			pullBy[fmt.Sprint(p.Init, p.Container)] = p
		}
		initsDone = true
		for i := range inits {
			if p, ok := pullBy[fmt.Sprint(true, inits[i].Name)]; ok {
				initStatus[i] = pullWaiting(&inits[i], p, pull)
				initsDone = false
				break
			}
			if f, ok := byName[fmt.Sprint(true, inits[i].Name)]; ok {
				initStatus[i] = waiting(&inits[i], "CreateContainerConfigError", f.Message)
				initsDone = false
				break
			}
			initStatus[i] = completed(&inits[i], t)
		}
		if initsDone {
			for i := range mains {
				if p, ok := pullBy[fmt.Sprint(false, mains[i].Name)]; ok {
					mainStatus[i] = pullWaiting(&mains[i], p, pull)
					continue
				}
				if f, ok := byName[fmt.Sprint(false, mains[i].Name)]; ok {
					mainStatus[i] = waiting(&mains[i], "CreateContainerConfigError", f.Message)
				}
			}
		}
	}

	names := func(cs []corev1.ContainerStatus, pending func(corev1.ContainerStatus) bool) string {
		var n []string
		for _, c := range cs {
			if pending(c) {
				n = append(n, c.Name)
			}
		}
		return "[" + strings.Join(n, " ") + "]"
	}
	cond := func(typ corev1.PodConditionType, ok bool, reason, msg string) corev1.PodCondition {
		c := corev1.PodCondition{Type: typ, Status: corev1.ConditionTrue, LastTransitionTime: t}
		if !ok {
			c.Status, c.Reason, c.Message = corev1.ConditionFalse, reason, msg
		}
		return c
	}
	unready := names(mainStatus, func(corev1.ContainerStatus) bool { return true })
	st := corev1.PodStatus{
		Phase: corev1.PodPending,
		Conditions: []corev1.PodCondition{
			cond(corev1.PodReadyToStartContainers, sandbox, "", ""),
			cond(corev1.PodInitialized, initsDone, "ContainersNotInitialized", "containers with incomplete status: "+
				names(initStatus, func(c corev1.ContainerStatus) bool { return c.State.Terminated == nil })),
			cond(corev1.PodReady, false, "ContainersNotReady", "containers with unready status: "+unready),
			cond(corev1.ContainersReady, false, "ContainersNotReady", "containers with unready status: "+unready),
		},
		ContainerStatuses: mainStatus,
		StartTime:         pod.Status.StartTime,
	}
	if len(inits) > 0 {
		st.InitContainerStatuses = initStatus
	}
	if st.StartTime == nil {
		st.StartTime = &t
	}
	return st
}

// pullWaiting is a container waiting on its image: ErrImageNeverPull, or the pull phase.
func pullWaiting(c *corev1.Container, p PullFailure, phase string) corev1.ContainerStatus {
	switch {
	case p.Reason == ErrImageNeverPull:
		return waiting(c, ErrImageNeverPull, p.Message)
	case phase == ImagePullBackOff:
		return waiting(c, ImagePullBackOff, fmt.Sprintf("Back-off pulling image %q: ErrImagePull: %s", c.Image, p.Message))
	}
	return waiting(c, ErrImagePull, p.Message)
}

// Event is one event a kubelet records for the pod (FieldPath names a container, or is empty).
type Event struct {
	Type, Reason, Message, FieldPath string
}

func fieldPath(init bool, name string) string {
	if init {
		return fmt.Sprintf("spec.initContainers{%s}", name)
	}
	return fmt.Sprintf("spec.containers{%s}", name)
}

// Events are the kubelet's events for a failing verdict in the given pull phase.
func Events(pod *corev1.Pod, v Verdict, pull string) []Event {
	var ev []Event
	switch {
	case len(v.Mounts) > 0:
		for _, m := range v.Mounts {
			ev = append(ev, Event{corev1.EventTypeWarning, "FailedMount",
				fmt.Sprintf("MountVolume.SetUp failed for volume %q : %s", m.Volume, m.Message), ""})
		}
	case len(v.PullSecrets) > 0:
		ev = append(ev, Event{corev1.EventTypeWarning, "FailedToRetrieveImagePullSecret", fmt.Sprintf(
			"Unable to retrieve some image pull secrets (%s); attempting to pull the image may not succeed.",
			strings.Join(v.PullSecrets, ", ")), ""})
		pulled := pod.Spec.Containers
		init := len(pod.Spec.InitContainers) > 0
		if init {
			pulled = pod.Spec.InitContainers[:1]
		}
		for _, c := range pulled {
			fp := fieldPath(init, c.Name)
			if pull == ImagePullBackOff {
				ev = append(ev, Event{corev1.EventTypeNormal, "BackOff", fmt.Sprintf("Back-off pulling image %q", c.Image), fp},
					Event{corev1.EventTypeWarning, "Failed", "Error: ImagePullBackOff", fp})
				continue
			}
			ev = append(ev, Event{corev1.EventTypeNormal, "Pulling", fmt.Sprintf("Pulling image %q", c.Image), fp},
				Event{corev1.EventTypeWarning, "Failed", fmt.Sprintf("Failed to pull image %q: %s", c.Image,
					pullMessage(c.Image, v.PullSecrets, pod.Namespace)), fp},
				Event{corev1.EventTypeWarning, "Failed", "Error: ErrImagePull", fp})
		}
	default:
		for _, p := range v.Pulls {
			fp := fieldPath(p.Init, p.Container)
			switch {
			case p.Reason == ErrImageNeverPull:
				ev = append(ev, Event{corev1.EventTypeWarning, ErrImageNeverPull, p.Message, fp},
					Event{corev1.EventTypeWarning, "Failed", "Error: " + ErrImageNeverPull, fp})
			case pull == ImagePullBackOff:
				ev = append(ev, Event{corev1.EventTypeNormal, "BackOff", fmt.Sprintf("Back-off pulling image %q", p.Image), fp},
					Event{corev1.EventTypeWarning, "Failed", "Error: ImagePullBackOff", fp})
			default:
				ev = append(ev, Event{corev1.EventTypeNormal, "Pulling", fmt.Sprintf("Pulling image %q", p.Image), fp},
					Event{corev1.EventTypeWarning, "Failed", fmt.Sprintf("Failed to pull image %q: %s", p.Image, p.Message), fp},
					Event{corev1.EventTypeWarning, "Failed", "Error: ErrImagePull", fp})
			}
		}
		for _, c := range v.Containers {
			ev = append(ev, Event{corev1.EventTypeWarning, "Failed", "Error: " + c.Message, fieldPath(c.Init, c.Container)})
		}
	}
	return ev
}
