package dev.vigil.tools;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.vigil.state.DeviceStateSerializer;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.flink.runtime.util.EnvironmentInformation;

/**
 * What a savepoint taken by {@code vigil demo --savepoint-out} came from, written next to Flink's
 * {@code _metadata} as {@value #FILE}: the versions that wrote it and the input it had read, so
 * that it can be restored against the same topic later (the golden savepoints are such savepoints).
 */
public record SavepointManifest(
        int stateFormat,
        String flinkVersion,
        String modelVersion,
        String topic,
        int partitions,
        long records,
        long scored) {

    public static final String FILE = "vigil-savepoint.json";

    private static final ObjectMapper JSON =
            new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    static void write(
            Path savepoint,
            String modelVersion,
            String topic,
            int partitions,
            long records,
            long scored)
            throws IOException {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("state_format", DeviceStateSerializer.CURRENT_FORMAT);
        m.put("flink_version", EnvironmentInformation.getVersion());
        m.put("model_version", modelVersion);
        m.put("topic", topic);
        m.put("partitions", partitions);
        m.put("records", records);
        m.put("scored", scored);
        m.put("written_at", Instant.now().toString());
        JSON.writeValue(savepoint.resolve(FILE).toFile(), m);
    }

    /** Reads the manifest of the savepoint in {@code savepoint}. */
    public static SavepointManifest read(Path savepoint) throws IOException {
        JsonNode m = JSON.readTree(savepoint.resolve(FILE).toFile());
        return new SavepointManifest(
                m.get("state_format").asInt(),
                m.get("flink_version").asText(),
                m.get("model_version").asText(),
                m.get("topic").asText(),
                m.get("partitions").asInt(),
                m.get("records").asLong(),
                m.get("scored").asLong());
    }
}
