package dev.vigil.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.JobID;

/**
 * What each checkpoint of a running bench job cost, read from the mini cluster's REST API (what
 * Flink's web UI shows under Checkpoints): per completed checkpoint, when it was triggered, how
 * long it took, the bytes it uploaded and the state's full size, and the longest synchronous and
 * asynchronous parts of the scoring subtasks; and the longest write-back of the state cache the
 * scoring subtasks report (metric {@code state_cache_write_back_ms}), which the scoring task does
 * before it passes the barrier on. Both pause the scoring task: they are what a step that arrives
 * meanwhile waits for.
 */
final class CheckpointStats {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String SCORING = "GRU scoring";

    private final HttpClient http = HttpClient.newHttpClient();
    private final String base;
    private final String job;
    private final String scoring; // the scoring operator's vertex

    /**
     * The checkpoints of {@code job}, running on a mini cluster whose REST port is {@code port}.
     */
    CheckpointStats(int port, JobID job) throws Exception {
        this.base = "http://127.0.0.1:" + port;
        this.job = job.toString();
        this.scoring = scoringVertex();
    }

    /** A free port on 127.0.0.1, for the REST endpoint of the next job's mini cluster. */
    static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0, 0, InetAddress.getLoopbackAddress())) {
            return socket.getLocalPort();
        }
    }

    /** The Flink options that put a job's mini cluster's REST endpoint on {@code port}. */
    static Map<String, String> restOn(int port) {
        return Map.of(
                "rest.bind-port", Integer.toString(port), "rest.port", Integer.toString(port));
    }

    /**
     * The completed checkpoints (not savepoints) still in Flink's history (the last 10 by default),
     * oldest first; {@code at_s} is the trigger time in seconds after {@code fromMs}.
     */
    List<Map<String, Object>> checkpoints(long fromMs) throws Exception {
        List<Map<String, Object>> rows = new ArrayList<>();
        for (JsonNode c : get("/jobs/" + job + "/checkpoints").path("history")) {
            if (!"COMPLETED".equals(c.path("status").asText())
                    || c.path("is_savepoint").asBoolean()) {
                continue;
            }
            long id = c.path("id").asLong();
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("id", id);
            row.put(
                    "at_s",
                    Math.round((c.path("trigger_timestamp").asLong() - fromMs) / 100.0) / 10.0);
            row.put("duration_ms", c.path("end_to_end_duration").asLong());
            row.put("uploaded_bytes", c.path("checkpointed_size").asLong());
            row.put("state_bytes", c.path("state_size").asLong());
            long sync = 0;
            long async = 0;
            String details = "/jobs/" + job + "/checkpoints/details/" + id + "/subtasks/" + scoring;
            for (JsonNode s : get(details).path("subtasks")) {
                sync = Math.max(sync, s.path("checkpoint").path("sync").asLong());
                async = Math.max(async, s.path("checkpoint").path("async").asLong());
            }
            row.put("scoring_sync_ms", sync);
            row.put("scoring_async_ms", async);
            rows.add(row);
        }
        rows.sort(Comparator.comparingLong(r -> (Long) r.get("id")));
        return rows;
    }

    /**
     * The longest state-cache write-back among the scoring subtasks' recent ones (the histogram's
     * window), in ms; NaN if the scoring operator reports none.
     */
    double longestWriteBackMs() throws Exception {
        String metrics = "/jobs/" + job + "/vertices/" + scoring + "/subtasks/metrics";
        for (JsonNode m : get(metrics)) {
            String id = m.path("id").asText();
            if (id.endsWith("state_cache_write_back_ms_max")) {
                String query = "?get=" + URLEncoder.encode(id, StandardCharsets.UTF_8) + "&agg=max";
                for (JsonNode v : get(metrics + query)) {
                    return v.path("max").asDouble(Double.NaN);
                }
            }
        }
        return Double.NaN;
    }

    private String scoringVertex() throws Exception {
        for (JsonNode v : get("/jobs/" + job).path("vertices")) {
            if (v.path("name").asText().startsWith(SCORING)) {
                return v.path("id").asText();
            }
        }
        throw new IllegalStateException("job " + job + " has no vertex named " + SCORING);
    }

    private JsonNode get(String path) throws Exception {
        HttpResponse<String> response =
                http.send(
                        HttpRequest.newBuilder(URI.create(base + path)).GET().build(),
                        HttpResponse.BodyHandlers.ofString());
        if (response.statusCode() != 200) {
            throw new IOException("GET " + path + ": HTTP " + response.statusCode());
        }
        return JSON.readTree(response.body());
    }
}
