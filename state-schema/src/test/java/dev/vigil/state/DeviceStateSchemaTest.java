package dev.vigil.state;

import static org.assertj.core.api.Assertions.assertThat;

import org.apache.flink.api.common.serialization.SerializerConfigImpl;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.java.typeutils.PojoTypeInfo;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.junit.jupiter.api.Test;

class DeviceStateSchemaTest {

    @Test
    void shouldBeAFlinkPojoSoKryoNeverWritesIt() {
        assertThat(DeviceStateSchema.typeInfo()).isInstanceOf(PojoTypeInfo.class);
    }

    @Test
    void shouldRoundTripThroughItsSerializerWithKryoDisabled() throws Exception {
        SerializerConfigImpl config = new SerializerConfigImpl();
        config.setGenericTypes(false);
        TypeSerializer<DeviceState> serializer =
                DeviceStateSchema.typeInfo().createSerializer(config);

        DeviceState state = DeviceState.fresh("m1", 64, 16);
        state.hidden[3] = 0.5f;
        state.forecast[15] = -1.25f;
        state.steps = 42;
        state.lastTs = 1_764_000_000_000L;
        state.lastSeq = 4711;
        state.episodeOpen = true;
        state.episodeStart = 1_763_999_990_000L;
        state.episodePeak = 9.7f;

        DataOutputSerializer out = new DataOutputSerializer(1024);
        serializer.serialize(state, out);
        DeviceState back = serializer.deserialize(new DataInputDeserializer(out.getCopyOfBuffer()));

        assertThat(back).usingRecursiveComparison().isEqualTo(state);
    }
}
