package dev.vigil.deploy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MappingIterator;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import dev.vigil.config.VigilConfig;
import dev.vigil.config.VigilOptions;
import dev.vigil.job.VigilJob;
import dev.vigil.metrics.Metrics;
import dev.vigil.testing.Fixtures;
import java.io.IOException;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.runtime.util.EnvironmentInformation;
import org.junit.jupiter.api.Test;

/**
 * Checks the deployment files against the code they deploy: the FlinkDeployment starts the real
 * entry class with configuration files the job accepts, the image puts the jar and the model where
 * the deployment and the configuration look for them, topics and ACLs match the configuration,
 * every alert links to a runbook section, dashboards and alerts query only metric names the job
 * exports, and Flink options go by their current names. It reads files only; it never talks to a
 * cluster.
 */
class DeployManifestsTest {

    private static final Path ROOT = Fixtures.repoRoot();
    private static final Path K8S = ROOT.resolve("deploy/k8s");
    private static final Path PROMETHEUS = ROOT.resolve("deploy/prometheus");
    private static final Path DOCKERFILE = K8S.resolve("Dockerfile");
    private static final Path JOB_CONFIG = K8S.resolve("vigil.yaml");
    private static final Path ALERTS = PROMETHEUS.resolve("alerts.yaml");
    private static final Path DASHBOARD = ROOT.resolve("deploy/grafana/vigil.json");
    private static final Path RUNBOOK = ROOT.resolve("deploy/RUNBOOK.md");

    private static final String RUNBOOK_LINK = "deploy/RUNBOOK.md#";
    private static final String VIGIL_METRIC_PREFIX = "flink_taskmanager_job_task_operator_vigil_";

    /**
     * The metrics {@link Metrics} registers under an {@code addGroup(key, value)} group, with that
     * key. Flink's Prometheus reporter puts the key into the exported name ({@code
     * vigil_<key>_<name>}) and the value into the label {@code <key>}; such a metric is never
     * exported under its bare name. A new labelled metric in {@link Metrics} belongs here.
     */
    private static final Map<String, String> LABEL_KEYS =
            Map.of(
                    Metrics.DEAD_LETTERS_BY_REASON,
                    Metrics.LABEL_REASON,
                    Metrics.LATE_BY_REASON,
                    Metrics.LABEL_REASON,
                    Metrics.MODEL_INFO,
                    "model_version",
                    Metrics.DRIFT_PSI,
                    Metrics.LABEL_FEATURE,
                    Metrics.DRIFT_MEAN_SHIFT_STD,
                    Metrics.LABEL_FEATURE,
                    Metrics.DRIFT_BIN_STEPS,
                    Metrics.LABEL_FEATURE + "_" + Metrics.LABEL_BIN,
                    Metrics.DRIFT_BIN_EXPECTED_SHARE,
                    Metrics.LABEL_FEATURE + "_" + Metrics.LABEL_BIN,
                    Metrics.SCORED_BY_ARM,
                    Metrics.LABEL_ARM,
                    Metrics.EPISODES_OPENED_BY_ARM,
                    Metrics.LABEL_ARM);

    private static final YAMLMapper YAML = new YAMLMapper();
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void shouldParseEveryManifestWhenReadAsYamlOrJson() throws IOException {
        List<Path> files = yamlFiles();

        assertThat(files).contains(K8S.resolve("flinkdeployment.yaml"), JOB_CONFIG, ALERTS);
        for (Path file : files) {
            assertThat(readAll(file)).as("documents of %s", file).isNotEmpty();
        }
        for (JsonNode resource : kubernetesResources()) {
            assertThat(resource.path("apiVersion").asText()).as("apiVersion").isNotBlank();
            assertThat(resource.path("metadata").path("name").asText()).as("name").isNotBlank();
        }
        assertThat(JSON.readTree(DASHBOARD.toFile()).path("panels").isArray()).isTrue();
    }

    @Test
    void shouldStartTheJobsEntryClassWhenTheOperatorDeploysIt() throws IOException {
        JsonNode job = flinkDeployment().path("spec").path("job");

        assertThat(job.path("entryClass").asText()).isEqualTo(VigilJob.class.getName());
        assertThat(job.path("upgradeMode").asText()).isEqualTo("savepoint");
        assertThat(job.path("state").asText()).isEqualTo("running");
        assertThat(job.path("parallelism").asInt())
                .isBetween(
                        1, Integer.parseInt(jobConfig().get(VigilOptions.MAX_PARALLELISM.key())));
    }

    @Test
    void shouldMatchTheFlinkVersionWhenBuildingAndDeclaringTheImage() throws IOException {
        String[] version = EnvironmentInformation.getVersion().split("\\.");
        String majorMinor = version[0] + "." + version[1];

        assertThat(dockerInstructions("FROM"))
                .singleElement()
                .asString()
                .startsWith("flink:" + EnvironmentInformation.getVersion() + "-java17");
        assertThat(flinkDeployment().path("spec").path("flinkVersion").asText())
                .isEqualTo("v" + majorMinor.replace('.', '_'));
    }

    @Test
    void shouldAcceptEveryConfigKeyWhenTheJobReadsItsArguments() throws IOException {
        List<String> configFiles = configArguments();
        Map<String, String> baked = imageFiles();

        assertThat(configFiles).isNotEmpty();
        assertThat(baked.get(configFiles.get(0)))
                .as("the first --config file is the repository's vigil.yaml, copied into the image")
                .isEqualTo(ROOT.relativize(JOB_CONFIG).toString());

        Set<String> known =
                VigilOptions.all().stream().map(ConfigOption::key).collect(Collectors.toSet());
        Map<String, String> values = jobConfig();
        for (String key : values.keySet()) {
            assertThat(
                            known.contains(key)
                                    || key.startsWith(VigilOptions.KAFKA_PROPERTIES_PREFIX)
                                    || !key.startsWith("vigil."))
                    .as("%s is a Vigil option, a Kafka pass-through property or a Flink key", key)
                    .isTrue();
        }
        assertThatCode(() -> VigilConfig.of(values)).doesNotThrowAnyException();
    }

    @Test
    void shouldKeepSecretsOutOfTheImageWhenKafkaUsesSasl() throws IOException {
        Map<String, String> values = jobConfig();
        List<String> configFiles = configArguments();
        List<String> secretMounts = secretMountPaths();

        assertThat(values)
                .containsEntry(
                        VigilOptions.KAFKA_PROPERTIES_PREFIX + "security.protocol", "SASL_SSL");
        assertThat(values.keySet())
                .noneMatch(
                        k ->
                                k.endsWith("jaas.config")
                                        || k.toLowerCase(Locale.ROOT).contains("password"));
        for (String file : configFiles.subList(1, configFiles.size())) {
            assertThat(secretMounts)
                    .as("%s is mounted from a Secret", file)
                    .anyMatch(mount -> file.startsWith(mount + "/"));
        }
    }

    @Test
    void shouldRunHighlyAvailableWhenCheckpointingToDurableStorage() throws IOException {
        JsonNode conf = flinkDeployment().path("spec").path("flinkConfiguration");

        assertThat(conf.path("high-availability.type").asText()).isEqualTo("kubernetes");
        for (String key :
                List.of(
                        "high-availability.storageDir",
                        "execution.checkpointing.dir",
                        "execution.checkpointing.savepoint-dir")) {
            assertThat(conf.path(key).asText())
                    .as(key)
                    .contains("://")
                    .doesNotStartWith("file:")
                    .doesNotStartWith("local:");
        }
    }

    /**
     * Flink 2 still reads some keys of Flink 1 as deprecated aliases and drops others; a deployment
     * written with the current names is not left with a setting a later Flink ignores. Checked
     * against the deprecated keys of the option classes these files set.
     */
    @Test
    void shouldSetFlinkOptionsByTheirCurrentNames() throws Exception {
        Set<String> deprecated = new HashSet<>();
        for (Class<?> options :
                List.of(
                        org.apache.flink.configuration.CheckpointingOptions.class,
                        org.apache.flink.configuration.StateBackendOptions.class,
                        org.apache.flink.configuration.StateRecoveryOptions.class,
                        org.apache.flink.configuration.HighAvailabilityOptions.class,
                        org.apache.flink.configuration.JobManagerOptions.class,
                        org.apache.flink.configuration.TaskManagerOptions.class,
                        org.apache.flink.configuration.RestOptions.class,
                        org.apache.flink.configuration.MetricOptions.class,
                        org.apache.flink.configuration.CoreOptions.class,
                        org.apache.flink.configuration.PipelineOptions.class,
                        org.apache.flink.configuration.RestartStrategyOptions.class,
                        org.apache.flink.configuration.BlobServerOptions.class,
                        org.apache.flink.configuration.WebOptions.class,
                        org.apache.flink.state.rocksdb.RocksDBOptions.class)) {
            for (Field f : options.getFields()) {
                if (Modifier.isStatic(f.getModifiers())
                        && ConfigOption.class.isAssignableFrom(f.getType())) {
                    for (var key : ((ConfigOption<?>) f.get(null)).fallbackKeys()) {
                        if (key.isDeprecated()) {
                            deprecated.add(key.getKey());
                        }
                    }
                }
            }
        }
        assertThat(deprecated).contains("state.backend.incremental"); // the check sees them

        Set<String> keys = new HashSet<>();
        flinkDeployment()
                .path("spec")
                .path("flinkConfiguration")
                .fieldNames()
                .forEachRemaining(keys::add);
        for (String line : Files.readAllLines(ROOT.resolve("deploy/local/conf/config.yaml"))) {
            Matcher m = Pattern.compile("^#?\\s*([a-z][\\w.-]*):\\s").matcher(line);
            if (m.find()) {
                keys.add(m.group(1)); // commented-out settings too: they are offered to turn on
            }
        }
        assertThat(keys).contains("execution.checkpointing.dir", "state.backend.type");
        assertThat(keys).doesNotContainAnyElementsOf(deprecated);
    }

    @Test
    void shouldDisableOnnxRuntimeTelemetryWhenAnyJvmMayLoadIt() throws IOException {
        JsonNode conf = flinkDeployment().path("spec").path("flinkConfiguration");

        assertThat(conf.path("containerized.taskmanager.env.ORT_DISABLE_TELEMETRY").asText())
                .isEqualTo("1");
        assertThat(conf.path("containerized.master.env.ORT_DISABLE_TELEMETRY").asText())
                .isEqualTo("1");
        assertThat(dockerInstructions("ENV")).contains("ORT_DISABLE_TELEMETRY=1");
    }

    @Test
    void shouldPutJarAndModelWhereTheDeploymentLooksWhenTheImageIsBuilt() throws IOException {
        Map<String, String> baked = imageFiles();
        String jarUri = flinkDeployment().path("spec").path("job").path("jarURI").asText();
        String modelDir = jobConfig().get(VigilOptions.MODEL_DIR.key());

        assertThat(jarUri).startsWith("local://");
        assertThat(baked.get(jarUri.substring("local://".length())))
                .matches("job/target/vigil-job-.+-flink\\.jar");
        for (String file : List.of("model.onnx", "model.json")) {
            String source = baked.get(modelDir + "/" + file);
            assertThat(source).as("%s in the image", file).isNotNull();
            assertThat(ROOT.resolve(source)).exists();
        }
    }

    @Test
    void shouldDeclareEveryTopicWhenTheJobReadsOrWritesIt() throws IOException {
        Map<String, String> values = jobConfig();
        Set<String> configured =
                Stream.of(
                                VigilOptions.TOPIC_TELEMETRY,
                                VigilOptions.TOPIC_ANOMALIES,
                                VigilOptions.TOPIC_DEAD_LETTERS,
                                VigilOptions.TOPIC_SCORES)
                        .map(o -> option(values, o))
                        .filter(t -> !t.isBlank())
                        .collect(Collectors.toSet());
        Map<String, JsonNode> topics = new HashMap<>();
        for (JsonNode t : resourcesOfKind("KafkaTopic")) {
            String name =
                    t.path("spec")
                            .path("topicName")
                            .asText(t.path("metadata").path("name").asText());
            topics.put(name, t);
        }

        assertThat(topics.keySet()).containsExactlyInAnyOrderElementsOf(configured);
        topics.forEach(
                (name, t) -> {
                    assertThat(t.path("apiVersion").asText()).isEqualTo("kafka.strimzi.io/v1beta2");
                    assertThat(t.path("spec").path("replicas").asInt()).as(name).isEqualTo(3);
                    assertThat(t.path("spec").path("config").path("min.insync.replicas").asInt())
                            .as(name)
                            .isEqualTo(2);
                });
        String anomalies = option(values, VigilOptions.TOPIC_ANOMALIES);
        assertThat(
                        topics.get(anomalies)
                                .path("spec")
                                .path("config")
                                .path("cleanup.policy")
                                .asText())
                .isEqualTo("delete");
    }

    @Test
    void shouldGrantTheKafkaUserWhatTheJobUsesWhenAuthorizationIsOn() throws IOException {
        Map<String, String> values = jobConfig();
        Set<String> grants = new HashSet<>();
        for (JsonNode user : resourcesOfKind("KafkaUser")) {
            for (JsonNode acl : user.path("spec").path("authorization").path("acls")) {
                JsonNode resource = acl.path("resource");
                for (JsonNode op : acl.path("operations")) {
                    grants.add(
                            resource.path("type").asText()
                                    + ":"
                                    + resource.path("name").asText()
                                    + ":"
                                    + op.asText());
                }
            }
        }
        if (grants.isEmpty()) {
            return; // no KafkaUser in deploy/k8s: the brokers authorize some other way
        }

        assertThat(grants)
                .contains(
                        "topic:" + option(values, VigilOptions.TOPIC_TELEMETRY) + ":Read",
                        "group:" + option(values, VigilOptions.KAFKA_GROUP_ID) + ":Read",
                        "topic:" + option(values, VigilOptions.TOPIC_ANOMALIES) + ":Write",
                        "topic:" + option(values, VigilOptions.TOPIC_DEAD_LETTERS) + ":Write",
                        "transactionalId:"
                                + option(values, VigilOptions.KAFKA_TRANSACTIONAL_ID_PREFIX)
                                + ":Write");
    }

    @Test
    void shouldLinkEveryAlertToARunbookSectionWhenItFires() throws IOException {
        Set<String> anchors = runbookAnchors();
        List<JsonNode> rules = alertRules();

        assertThat(rules).isNotEmpty();
        for (JsonNode rule : rules) {
            String name = rule.path("alert").asText();
            assertThat(name).isNotBlank();
            assertThat(rule.path("expr").asText()).as("%s expr", name).isNotBlank();
            assertThat(rule.path("for").asText()).as("%s for", name).matches("\\d+[smh]");
            assertThat(rule.path("labels").path("severity").asText())
                    .as("%s severity", name)
                    .isIn("warning", "critical");
            String link = rule.path("annotations").path("runbook_url").asText();
            assertThat(link).as("%s runbook_url", name).startsWith(RUNBOOK_LINK);
            assertThat(anchors)
                    .as("%s links to a heading of deploy/RUNBOOK.md", name)
                    .contains(link.substring(RUNBOOK_LINK.length()));
        }
    }

    @Test
    void shouldQueryOnlyExportedMetricsWhenDashboardsAndAlertsNameVigilMetrics()
            throws IOException {
        Set<String> exported = exportedVigilMetricNames();
        List<String> alertExprs = new ArrayList<>();
        rules("alert").forEach(r -> alertExprs.add(r.path("expr").asText()));
        rules("record").forEach(r -> alertExprs.add(r.path("expr").asText()));
        List<String> dashboardExprs = new ArrayList<>();
        collectExprs(JSON.readTree(DASHBOARD.toFile()), dashboardExprs);

        Set<String> fromAlerts = vigilMetricNames(alertExprs);
        Set<String> fromDashboard = vigilMetricNames(dashboardExprs);

        assertThat(fromAlerts).isNotEmpty();
        assertThat(fromDashboard).isNotEmpty();
        assertThat(fromAlerts).as("vigil metrics in alerts.yaml").isSubsetOf(exported);
        assertThat(fromDashboard).as("vigil metrics in vigil.json").isSubsetOf(exported);
        // and the series alerts.yaml records, which the alerts and the dashboard read
        Set<String> recorded = new HashSet<>();
        rules("record").forEach(r -> recorded.add(r.path("record").asText()));
        assertThat(recorded).contains("vigil:feature_drift_psi:fleet");
        Pattern rule = Pattern.compile("vigil:[A-Za-z0-9_:]+");
        for (String expr : concat(alertExprs, dashboardExprs)) {
            Matcher m = rule.matcher(expr);
            while (m.find()) {
                assertThat(recorded).as("recorded in alerts.yaml").contains(m.group());
            }
        }
    }

    private static List<String> concat(List<String> a, List<String> b) {
        List<String> all = new ArrayList<>(a);
        all.addAll(b);
        return all;
    }

    // ---- the files, parsed

    private static List<Path> yamlFiles() throws IOException {
        List<Path> files = new ArrayList<>();
        for (Path dir : List.of(K8S, PROMETHEUS)) {
            try (Stream<Path> s = Files.walk(dir)) {
                s.filter(p -> p.toString().endsWith(".yaml") || p.toString().endsWith(".yml"))
                        .sorted()
                        .forEach(files::add);
            }
        }
        return files;
    }

    /** Every document of a (possibly multi-document) YAML file, empty documents left out. */
    private static List<JsonNode> readAll(Path file) throws IOException {
        try (MappingIterator<JsonNode> it =
                YAML.readerFor(JsonNode.class).readValues(file.toFile())) {
            return it.readAll().stream().filter(n -> n != null && !n.isNull()).toList();
        }
    }

    /** The Kubernetes resources under deploy/k8s: documents with a kind. */
    private static List<JsonNode> kubernetesResources() throws IOException {
        List<JsonNode> resources = new ArrayList<>();
        for (Path file : yamlFiles()) {
            if (file.startsWith(K8S)) {
                for (JsonNode doc : readAll(file)) {
                    if (doc.hasNonNull("kind")) {
                        resources.add(doc);
                    }
                }
            }
        }
        return resources;
    }

    private static List<JsonNode> resourcesOfKind(String kind) throws IOException {
        return kubernetesResources().stream()
                .filter(r -> r.path("kind").asText().equals(kind))
                .toList();
    }

    private static JsonNode flinkDeployment() throws IOException {
        List<JsonNode> deployments = resourcesOfKind("FlinkDeployment");
        assertThat(deployments).hasSize(1);
        JsonNode d = deployments.get(0);
        assertThat(d.path("apiVersion").asText()).isEqualTo("flink.apache.org/v1beta1");
        return d;
    }

    /** The job's configuration as the job reads it (flat lines, not YAML). */
    private static Map<String, String> jobConfig() {
        return VigilConfig.readFile(JOB_CONFIG);
    }

    private static String option(Map<String, String> values, ConfigOption<String> option) {
        return values.getOrDefault(option.key(), option.defaultValue());
    }

    /** The files named by {@code --config} in the FlinkDeployment's job arguments, in order. */
    private static List<String> configArguments() throws IOException {
        List<String> args = new ArrayList<>();
        flinkDeployment().path("spec").path("job").path("args").forEach(a -> args.add(a.asText()));
        List<String> files = new ArrayList<>();
        for (int i = 0; i < args.size(); i++) {
            if (args.get(i).equals("--config")) {
                assertThat(i + 1).as("--config is followed by a file").isLessThan(args.size());
                files.add(args.get(++i));
            }
        }
        return files;
    }

    /** Mount paths of Secret volumes in the FlinkDeployment's pod templates. */
    private static List<String> secretMountPaths() throws IOException {
        JsonNode spec = flinkDeployment().path("spec");
        List<JsonNode> templates =
                List.of(
                        spec.path("podTemplate"),
                        spec.path("jobManager").path("podTemplate"),
                        spec.path("taskManager").path("podTemplate"));
        Set<String> secretVolumes = new HashSet<>();
        for (JsonNode t : templates) {
            for (JsonNode v : t.path("spec").path("volumes")) {
                if (v.has("secret")) {
                    secretVolumes.add(v.path("name").asText());
                }
            }
        }
        List<String> mounts = new ArrayList<>();
        for (JsonNode t : templates) {
            for (JsonNode c : t.path("spec").path("containers")) {
                for (JsonNode m : c.path("volumeMounts")) {
                    if (secretVolumes.contains(m.path("name").asText())) {
                        mounts.add(m.path("mountPath").asText());
                    }
                }
            }
        }
        return mounts;
    }

    /** The Dockerfile's instructions of one kind, continuation lines joined, comments dropped. */
    private static List<String> dockerInstructions(String kind) throws IOException {
        List<String> instructions = new ArrayList<>();
        StringBuilder current = new StringBuilder();
        for (String line : Files.readAllLines(DOCKERFILE)) {
            String t = line.strip();
            if (t.startsWith("#") || (t.isEmpty() && current.length() == 0)) {
                continue;
            }
            if (t.endsWith("\\")) {
                current.append(t, 0, t.length() - 1).append(' ');
                continue;
            }
            current.append(t);
            String instruction = current.toString().strip();
            current.setLength(0);
            String[] parts = instruction.split("\\s+", 2);
            if (parts[0].equalsIgnoreCase(kind) && parts.length == 2) {
                instructions.add(parts[1]);
            }
        }
        return instructions;
    }

    /** What the image's COPY instructions put where: image path to repository path. */
    private static Map<String, String> imageFiles() throws IOException {
        Map<String, String> files = new LinkedHashMap<>();
        for (String copy : dockerInstructions("COPY")) {
            List<String> args =
                    Stream.of(copy.split("\\s+")).filter(a -> !a.startsWith("--")).toList();
            String dest = args.get(args.size() - 1);
            List<String> sources = args.subList(0, args.size() - 1);
            for (String source : sources) {
                String target =
                        dest.endsWith("/")
                                ? dest + source.substring(source.lastIndexOf('/') + 1)
                                : dest;
                files.put(target, source);
            }
        }
        return files;
    }

    /** The alerting rules of alerts.yaml. */
    private static List<JsonNode> alertRules() throws IOException {
        return rules("alert");
    }

    /** The rules of alerts.yaml with the key {@code kind}: {@code alert} or {@code record}. */
    private static List<JsonNode> rules(String kind) throws IOException {
        List<JsonNode> rules = new ArrayList<>();
        for (JsonNode doc : readAll(ALERTS)) {
            for (JsonNode group : doc.path("groups")) {
                for (JsonNode rule : group.path("rules")) {
                    if (rule.has(kind)) {
                        rules.add(rule);
                    }
                }
            }
        }
        return rules;
    }

    /**
     * GitHub's anchors of the runbook's headings: lower case, punctuation dropped, - for spaces.
     */
    private static Set<String> runbookAnchors() throws IOException {
        Set<String> anchors = new HashSet<>();
        for (String line : Files.readAllLines(RUNBOOK)) {
            Matcher m = Pattern.compile("^#{1,6}\\s+(.+?)\\s*$").matcher(line);
            if (m.matches()) {
                anchors.add(
                        m.group(1)
                                .toLowerCase(Locale.ROOT)
                                .replaceAll("[^\\p{L}\\p{N} _-]", "")
                                .replace(' ', '-'));
            }
        }
        return anchors;
    }

    /** Every {@code expr} (panel targets) and templating query string in a dashboard. */
    private static void collectExprs(JsonNode node, List<String> out) {
        for (Map.Entry<String, JsonNode> e : node.properties()) {
            if ((e.getKey().equals("expr") || e.getKey().equals("query"))
                    && e.getValue().isTextual()) {
                out.add(e.getValue().asText());
            } else {
                collectExprs(e.getValue(), out);
            }
        }
        if (node.isArray()) {
            node.forEach(n -> collectExprs(n, out));
        }
    }

    /** Names after {@code ..._operator_vigil_} in PromQL, summary suffixes removed. */
    private static Set<String> vigilMetricNames(List<String> exprs) {
        Pattern p = Pattern.compile(Pattern.quote(VIGIL_METRIC_PREFIX) + "([A-Za-z0-9_]+)");
        Set<String> names = new HashSet<>();
        for (String expr : exprs) {
            Matcher m = p.matcher(expr);
            while (m.find()) {
                names.add(m.group(1).replaceAll("_(count|sum)$", ""));
            }
        }
        return names;
    }

    /**
     * What the job exports under {@code ..._operator_vigil_}: each public metric name constant of
     * {@link Metrics}, prefixed with its group's key when it is labelled.
     */
    private static Set<String> exportedVigilMetricNames() {
        Set<String> exported = new HashSet<>();
        for (Field f : Metrics.class.getFields()) {
            int mod = f.getModifiers();
            if (Modifier.isStatic(mod)
                    && Modifier.isFinal(mod)
                    && f.getType() == String.class
                    && !f.getName().equals("GROUP")) {
                try {
                    String name = (String) f.get(null);
                    String key = LABEL_KEYS.get(name);
                    exported.add(key == null ? name : key + "_" + name);
                    // A shadow model's scoring metrics: the same names in the group vigil_shadow.
                    exported.add("shadow_" + name);
                } catch (IllegalAccessException e) {
                    throw new IllegalStateException(e);
                }
            }
        }
        assertThat(exported)
                .contains(Metrics.RECORDS_IN, "reason_" + Metrics.DEAD_LETTERS_BY_REASON);
        return exported;
    }
}
