package dev.vigil.state;

import java.io.IOException;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSchemaCompatibility;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.api.java.typeutils.runtime.PojoSerializerSnapshot;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;

/**
 * What a checkpoint or savepoint records about {@link DeviceStateSerializer}: the state format
 * version it wrote. On restore Flink asks the new code's snapshot whether it can read the old one:
 *
 * <ul>
 *   <li>the same or an older format: as it is (every value carries its format and the serializer
 *       reads them all, so no device is rewritten at restore);
 *   <li>a newer format (a savepoint from a newer Vigil): incompatible, and the restore stops;
 *   <li>Flink's POJO serializer (Vigil before the versioned format): after migration, Flink reads
 *       every device with the POJO serializer and writes it in the current format.
 * </ul>
 */
public final class DeviceStateSerializerSnapshot implements TypeSerializerSnapshot<DeviceState> {

    private static final int SNAPSHOT_VERSION = 1;

    private int format = DeviceStateSerializer.CURRENT_FORMAT;

    /** The state format version the serializer that wrote this snapshot used. */
    public int format() {
        return format;
    }

    @Override
    public int getCurrentVersion() {
        return SNAPSHOT_VERSION;
    }

    @Override
    public void writeSnapshot(DataOutputView out) throws IOException {
        out.writeInt(format);
    }

    @Override
    public void readSnapshot(int readVersion, DataInputView in, ClassLoader classLoader)
            throws IOException {
        if (readVersion != SNAPSHOT_VERSION) {
            throw new IOException(
                    "device state snapshot version "
                            + readVersion
                            + ", but this Vigil reads version "
                            + SNAPSHOT_VERSION
                            + ": the savepoint was written by a newer Vigil");
        }
        format = in.readInt();
    }

    @Override
    public TypeSerializer<DeviceState> restoreSerializer() {
        return new DeviceStateSerializer();
    }

    @Override
    public TypeSerializerSchemaCompatibility<DeviceState> resolveSchemaCompatibility(
            TypeSerializerSnapshot<DeviceState> old) {
        if (old instanceof DeviceStateSerializerSnapshot previous) {
            return previous.format <= DeviceStateSerializer.CURRENT_FORMAT
                    ? TypeSerializerSchemaCompatibility.compatibleAsIs()
                    : TypeSerializerSchemaCompatibility.incompatible();
        }
        if (old instanceof PojoSerializerSnapshot) {
            return TypeSerializerSchemaCompatibility.compatibleAfterMigration();
        }
        return TypeSerializerSchemaCompatibility.incompatible();
    }
}
