// Structural check of a Kubeflow MPI Operator MPIJob (kubeflow.org/v2beta1), written from the
// operator's published API: every field of MPIJobSpec, RunPolicy, SchedulingPolicy and ReplicaSpec
// with its type and enum, unknown fields rejected, the required ones required. The pod templates
// inside are returned so that the caller validates them as Kubernetes PodTemplateSpecs.

const int = (min) => ({ type: "integer", min });
const str = () => ({ type: "string" });
const bool = () => ({ type: "boolean" });
const oneOf = (...values) => ({ type: "enum", values });
const obj = (fields, required = []) => ({ type: "object", fields, required });
const mapOf = (item) => ({ type: "map", item });
const quantity = () => ({ type: "quantity" });
const podTemplate = () => ({ type: "podTemplate" });

const replicaSpec = obj({
  replicas: int(0),
  template: podTemplate(),
  restartPolicy: oneOf("Always", "OnFailure", "Never", "ExitCode"),
}, ["template"]);

export const mpiJobSpec = obj({
  slotsPerWorker: int(1),
  runLauncherAsWorker: bool(),
  runPolicy: obj({
    cleanPodPolicy: oneOf("All", "Running", "None"),
    ttlSecondsAfterFinished: int(0),
    activeDeadlineSeconds: int(1),
    backoffLimit: int(0),
    schedulingPolicy: obj({
      minAvailable: int(0),
      queue: str(),
      minResources: mapOf(quantity()),
      priorityClass: str(),
      scheduleTimeoutSeconds: int(0),
    }),
    suspend: bool(),
    managedBy: oneOf("kubeflow.org/mpi-operator", "kueue.x-k8s.io/multikueue"),
  }),
  mpiReplicaSpecs: obj({ Launcher: replicaSpec, Worker: replicaSpec }, ["Launcher"]),
  sshAuthMountPath: str(),
  launcherCreationPolicy: oneOf("AtStartup", "WaitForWorkersReady"),
  mpiImplementation: oneOf("OpenMPI", "Intel", "MPICH"),
}, ["mpiReplicaSpecs"]);

const isPlainObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

// Returns { errors, podTemplates: [{ where, template }] }.
export function checkMpiJobSpec(spec, where = "spec") {
  const errors = [];
  const podTemplates = [];
  const walk = (schema, value, at) => {
    switch (schema.type) {
      case "integer":
        if (!Number.isInteger(value)) errors.push(`${at}: must be an integer, got ${JSON.stringify(value)}`);
        else if (schema.min !== undefined && value < schema.min) errors.push(`${at}: must be >= ${schema.min}, got ${value}`);
        return;
      case "string":
        if (typeof value !== "string") errors.push(`${at}: must be a string`);
        return;
      case "boolean":
        if (typeof value !== "boolean") errors.push(`${at}: must be a boolean`);
        return;
      case "enum":
        if (!schema.values.includes(value)) errors.push(`${at}: must be one of ${schema.values.join(", ")}, got ${JSON.stringify(value)}`);
        return;
      case "quantity":
        if (!(typeof value === "number" || (typeof value === "string" && /^[+-]?[0-9.]+([eE][+-]?[0-9]+|[numkMGTPE]|Ki|Mi|Gi|Ti|Pi|Ei)?$/.test(value)))) {
          errors.push(`${at}: not a resource quantity: ${JSON.stringify(value)}`);
        }
        return;
      case "map":
        if (!isPlainObject(value)) { errors.push(`${at}: must be an object`); return; }
        for (const [k, v] of Object.entries(value)) walk(schema.item, v, `${at}.${k}`);
        return;
      case "podTemplate":
        if (!isPlainObject(value)) { errors.push(`${at}: must be a pod template object`); return; }
        podTemplates.push({ where: at, template: value });
        return;
      case "object":
        if (!isPlainObject(value)) { errors.push(`${at}: must be an object`); return; }
        for (const r of schema.required) if (!(r in value)) errors.push(`${at}.${r}: required`);
        for (const [k, v] of Object.entries(value)) {
          if (!(k in schema.fields)) errors.push(`${at}.${k}: unknown field`);
          else if (v !== null) walk(schema.fields[k], v, `${at}.${k}`);
        }
        return;
      default:
        throw new Error(`bad schema type ${schema.type}`);
    }
  };
  walk(mpiJobSpec, spec, where);
  // The operator's own validation: exactly one launcher, containers in every template.
  const specs = isPlainObject(spec) && isPlainObject(spec.mpiReplicaSpecs) ? spec.mpiReplicaSpecs : {};
  if (specs.Launcher && specs.Launcher.replicas !== undefined && specs.Launcher.replicas !== 1) {
    errors.push(`${where}.mpiReplicaSpecs.Launcher.replicas: must be 1`);
  }
  for (const { where: at, template } of podTemplates) {
    const containers = template.spec && template.spec.containers;
    if (!Array.isArray(containers) || containers.length === 0) errors.push(`${at}.spec.containers: at least one container required`);
  }
  return { errors, podTemplates };
}
