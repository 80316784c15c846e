-- Schema version 3: the Kubernetes node labels and taints of a nodegroup (API 1.14), as JSON.
ALTER TABLE nodegroup ADD COLUMN node_labels TEXT;
ALTER TABLE nodegroup ADD COLUMN node_taints TEXT;
