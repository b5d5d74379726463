/*
 * Native half of the "xs-ota/esp32/native" module (see xs-ota-native.js).
 *
 * runningPartition(): the label ("ota_0", "ota_1", ...) of the partition returned by
 * esp_ota_get_running_partition(), which is the slot the bootloader started (ESP-IDF works it
 * out from the address the app's code is mapped from, not from otadata, so it is right even
 * when the bootloader fell back to another slot). The label is copied into a JS string; the
 * partition record itself belongs to ESP-IDF and lives as long as the app.
 *
 * Written against the xsmc API (xsmc.h) as Moddable's own ESP32 modules are, for example
 * modules/io/flash/esp32/flash-esp32.c, which includes the same ESP-IDF header.
 */

#include "xsmc.h"
#include "xsHost.h"

#include "esp_partition.h"
#include "app_update/include/esp_ota_ops.h"

void xs_xsota_running_partition(xsMachine *the)
{
	const esp_partition_t *partition = esp_ota_get_running_partition();

	if (!partition)
		xsUnknownError("no running partition");

	xsmcSetString(xsResult, (char *)partition->label);
}
